"""Independent peer implementations run on the benchmark's tasks (``python -m benchmarks.peers.<name>`` from the
repository root; hpbandster's BOHB through ``run_peer_bohb.sh`` in its own venv)."""
