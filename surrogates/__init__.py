"""Performance and cost surrogates of Quick-Tune (deep-kernel GP); built in a later milestone."""
