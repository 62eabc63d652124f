#!/usr/bin/env bash
# The main job on the bundled default: replays the bundled real meta-dataset (stores/offline10-64px) with every
# method of the benchmark (Quick-Tune and its ablations, DyHPO, the GP, BOHB, DEHB, ASHA, Hyperband, random search
# and the no-HPO baselines) over all its datasets x 5 seeds, then writes the figures and tables.
# Resumable: cells already in $RUNS are skipped. Override with STORE=... OUT=... SEEDS=... JOBS=...
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1  # one thread per replay process (JOBS processes)
PY=.venv/bin/python
STORE=${STORE:-stores/offline10-64px}
VERSION=${VERSION:-offline64}
BUDGET=${BUDGET:-600}          # simulated seconds per replay = the per-run cap, as micro's 1 h budget = its 1 h cap
SEEDS=${SEEDS:-[0,1,2,3,4]}
JOBS=${JOBS:-2}
OUT=${OUT:-results/$(basename "$STORE")}
RUNS=${RUNS:-out/benchmark/$(basename "$STORE")}
METHODS='[quicktune,quicktune-M,quicktune-C,quicktune-G,dyhpo,gp,bohb,dehb,asha,hyperband,random_search,default_model,best_on_average]'
# GP methods (Quick-Tune and its ablations, DyHPO, gp) run the reference refit schedule (their default; the cells
# print "schedule=reference") and the default meta-training config; see docs/quicktune-deviations.md.
start=$(date +%s)
$PY -m metagen.store validate "$STORE"
status=0
$PY -m benchmark.run store="$STORE" out="$RUNS" version="$VERSION" methods="$METHODS" seeds="$SEEDS" \
  budget_s="$BUDGET" jobs="$JOBS" cache_dir=out/cache +method_options.default_model.model=efficientnet_lite0 \
  || status=$?
$PY -m benchmark.figures results="$RUNS" out="$OUT"
echo "main job done in $(( $(date +%s) - start )) s: figures and tables in $OUT/ (replays in $RUNS/)"
if [ "$status" != 0 ]; then  # failed cells are listed above; the figures cover the cells that ran
  echo "main job: some cells failed (see above); the figures and tables leave them out"
  exit "$status"
fi
