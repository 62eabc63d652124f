"""Performance scripts (not part of the installed package): run them from the repository root as modules,
e.g. ``python -m benchmarks.replay_bench``; they print ratios measured in one run (results in RESULTS.md)."""
