#!/usr/bin/env bash
# Runs the independent BOHB peer (hpbandster 0.7.4, the BOHB authors' implementation) on tasks of a store and
# writes its trajectories in the benchmark's RESULTS layout (method "bohb-hpbandster").
#
# Creates benchmarks/peers/.venv on first use (its own venv: hpbandster is unmaintained since 2018 and must not
# enter the project's environment). Every argument is passed to bohb_hpbandster.py, e.g.
#   benchmarks/peers/run_peer_bohb.sh --store STORE --version micro --datasets BCT CRS --seeds 0 1 2 --out RESULTS
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3.11}"
if [[ ! -x "$here/.venv/bin/python" ]]; then
  echo "creating $here/.venv with $python" >&2
  "$python" -m venv "$here/.venv"
fi
stamp="$here/.venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$here/.venv/bin/pip" install --quiet --upgrade pip
  "$here/.venv/bin/pip" install --quiet -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi
# the repository root on the module path: benchmarks.peers.bohb_hpbandster imports the benchmark's task code
PYTHONPATH="$(cd "$here/../.." && pwd)${PYTHONPATH:+:$PYTHONPATH}" exec "$here/.venv/bin/python" -m benchmarks.peers.bohb_hpbandster "$@"
