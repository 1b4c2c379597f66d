#!/usr/bin/env bash
# The Donkey-Net ablation (docs/ablation.md): one row = one fine-tune + its evaluations.
#
#   scripts/ablation.sh data                  # make the training and held-out pairs (once)
#   scripts/ablation.sh ROW SEED              # train and evaluate one row
#   scripts/ablation.sh table                 # print the table from the evaluations
#
# ROW: shipped (INIT evaluated as it is), control, dual, attention, msfm, disc-driving, full. Every row fine-tunes the same
# Monkey-Net weights (INIT) with configs/ablation.yaml: the same data, steps, batch and
# seed; only the --set list below differs. Folders: ABL (default ~/donkey-runs/abl).
# THREADS (default 2) sets the torch threads of training and evaluation.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
DONKEY=${DONKEY:-donkey}
ABL=${ABL:-$HOME/donkey-runs/abl}
MGIF=${MGIF:-$HERE/../shared/data/mgif128/train}
INIT=${INIT:-$HERE/donkey/assets/default.safetensors}
THREADS=${THREADS:-2}
SYNTH_PAIRS=${SYNTH_PAIRS:-30}  # held-out synthetic pairs evaluated (of the 60 made)
export OMP_NUM_THREADS=$THREADS

row_sets() {
  case "$1" in
    control) echo "" ;;
    dual) echo "train.pair_steps=dual" ;;
    attention) echo "model.dense_motion.attention=true model.generator.attention=true model.discriminator.attention=true" ;;
    msfm) echo "train.loss.feature_matching_scales=[1.0,0.75,0.5]" ;;
    disc-driving) echo "train.pair_steps=dual train.disc_keypoints=driving" ;;
    full) echo "train.pair_steps=dual model.dense_motion.attention=true model.generator.attention=true model.discriminator.attention=true train.loss.feature_matching_scales=[1.0,0.75,0.5]" ;;
    *) echo "unknown row $1 (control, dual, attention, msfm, disc-driving, full)" >&2; exit 2 ;;
  esac
}

make_data() {
  mkdir -p "$ABL/data"
  cd "$ABL/data"
  # Training pairs: synthetic creatures (seed 200) and real MGIF pairs from the training split.
  [ -f synthpairs64/pairs.json ] || $DONKEY synth synthpairs64 --count 300 --pairs --size 64 --seed 200
  [ -f mgifpairs/pairs.json ] || $DONKEY pairs "$MGIF" --split train -o mgifpairs/pairs.json --device cpu
  # Held out: synthetic pairs from a seed never used in training, real pairs among val videos.
  [ -f evalsynth64/pairs.json ] || $DONKEY synth evalsynth64 --count 60 --pairs --size 64 --seed 9100
  [ -f mgifvalpairs/pairs.json ] || $DONKEY pairs "$MGIF" --split val -o mgifvalpairs/pairs.json --device cpu
}

run_row() {
  local row=$1 seed=$2 run="$ABL/runs/$1-s$2" sets=() model
  mkdir -p "$ABL/runs" "$ABL/evals"
  if [ "$row" = shipped ]; then  # the starting point itself, not trained further
    model=$INIT
  else
    for s in $(row_sets "$row"); do sets+=(--set "$s"); done
    model="$run/last.ckpt"
    $DONKEY train "$HERE/configs/ablation.yaml" --data "$MGIF" \
      --pairs "$ABL/data/synthpairs64/pairs.json" --pairs "$ABL/data/mgifpairs/pairs.json" \
      --init "$INIT" -o "$run" --device cpu --threads "$THREADS" --resume auto \
      --set "train.seed=$seed" "${sets[@]}"
  fi
  local out="$ABL/evals/$row-s$seed"
  [ -s "$out-val.json" ] || $DONKEY eval -m "$model" --data "$MGIF" --split val --device cpu --json > "$out-val.json"
  for mode in relative absolute; do
    [ -s "$out-synth-$mode.json" ] || $DONKEY eval -m "$model" --pairs "$ABL/data/evalsynth64/pairs.json" \
      --limit "$SYNTH_PAIRS" --transfer-mode $mode --device cpu --json > "$out-synth-$mode.json"
    if [ ! -s "$out-real-$mode.json" ] && \
       python3 -c "import json,sys; sys.exit(not json.load(open('$ABL/data/mgifvalpairs/pairs.json'))['pairs'])"; then
      $DONKEY eval -m "$model" --pairs "$ABL/data/mgifvalpairs/pairs.json" \
        --transfer-mode $mode --device cpu --json > "$out-real-$mode.json"
    fi
  done
}

case "${1:-}" in
  data) make_data ;;
  table) python3 "$HERE/scripts/ablation_table.py" "$ABL" ;;
  "") sed -n '2,11p' "$0"; exit 2 ;;
  *) run_row "$1" "${2:-0}" ;;
esac
