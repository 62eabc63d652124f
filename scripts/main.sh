#!/usr/bin/env bash
# The main job on the bundled default: builds the demo store, checks it, summarizes it, writes its data card.
# (Until the benchmark milestone lands, the main job is the store's own pipeline.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
STORE=${STORE:-out/demo-store}
OUT=${OUT:-out/data_cards}
[ -f "$STORE/store.json" ] || .venv/bin/python -m metagen.store synth "$STORE" --profile tiny --seed 0
.venv/bin/python -m metagen.store validate "$STORE"
.venv/bin/python -m metagen.store info "$STORE"
.venv/bin/python -m metagen.store card "$STORE" --out "$OUT"
echo "done: store in $STORE, data card in $OUT/"
