#!/usr/bin/env bash
# The main job on the bundled default: replays the bundled real meta-dataset (stores/qt-cpu10) with every
# method of the benchmark (Quick-Tune and its ablations, DyHPO, BOHB, ASHA, Hyperband, random search and the
# no-HPO baselines) over all its datasets x 5 seeds, then writes the figures and tables.
# Resumable: cells already in $RUNS are skipped. Override with STORE=... OUT=... SEEDS=... JOBS=...
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
PY=.venv/bin/python
STORE=${STORE:-stores/qt-cpu10}
VERSION=${VERSION:-cpu10}
BUDGET=${BUDGET:-120}          # simulated seconds per replay: 2x the per-run cap (see results/README.md)
SEEDS=${SEEDS:-[0,1,2,3,4]}
JOBS=${JOBS:-2}
OUT=${OUT:-results/$(basename "$STORE")}
RUNS=${RUNS:-out/benchmark/$(basename "$STORE")}
METHODS='[quicktune,quicktune-M,quicktune-C,quicktune-G,dyhpo,bohb,asha,hyperband,random_search,default_model,best_on_average]'
start=$(date +%s)
$PY -m metagen.store validate "$STORE"
$PY -m benchmark.run store="$STORE" out="$RUNS" version="$VERSION" methods="$METHODS" seeds="$SEEDS" \
  budget_s="$BUDGET" jobs="$JOBS" cache_dir=out/cache +method_options.default_model.model=efficientnet_lite0
$PY -m benchmark.figures results="$RUNS" out="$OUT"
echo "main job done in $(( $(date +%s) - start )) s: figures and tables in $OUT/ (replays in $RUNS/)"
