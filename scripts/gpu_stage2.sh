#!/bin/bash
# One call on a lent GPU machine (docs/default-model.md, "Next: a longer GPU stage"): the gpu
# check (tests + bench rows under $OUT), then the bundled 128x128 model trained further with
# every network, batch 32, lr 2e-4, on the MGIF training videos .gpu/train holds (626 of the
# 812) plus synthetic creatures rendered there; the learning rate drops (x 0.1) for the last
# part. It keeps a weight average (train.ema 0.999). Brings back the last weights with their
# discriminator (stage2b.safetensors, about 29 MB in 15 MB parts: a fine-tune here on the CPU
# can continue with --init), the averaged weights (stage2b-ema.safetensors, in parts too) and
# the logs (logs.tgz). Evaluate both here, on the CPU.
#
# Here, first:  python scripts/gpu_carry.py ../shared/data/mgif128/train .gpu/train
# Then, one device call from the repository root, carrying .gpu:
#               OUT=$OUT bash scripts/gpu_stage2.sh
#
# Seconds are counted from the start of this script: CHECK (gpu check budget, 0 skips it),
# P1_END (end of the high-lr part), P2_END (end of training). The defaults fit one 600 s call
# with some 40 s to spare. DEV=cpu runs it (slowly) on a machine without a GPU, to try it.
# The bench rows of the check are taken while the synthetic creatures render on the CPU.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
OUT=${OUT:?set OUT to the folder whose files come back}
LOG=$OUT/log.txt
say() { echo "[$(el)s] $*" | tee -a "$LOG"; }
PY=${PY:-python3}
D="$PY -m donkey"
DEV=${DEV:-cuda}
CHECK=${CHECK:-120}
P1_END=${P1_END:-430}
P2_END=${P2_END:-540}
W=${W:-/tmp/stage2}
rm -rf "$W" && mkdir -p "$W"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1
say "start on $DEV"

if ! $PY -c "from PIL import features; raise SystemExit(not features.check('webp'))"; then
    say "Pillow here cannot read WebP: .gpu/train cannot be used; stopping before training"
    exit 1
fi
[ -d .gpu/train ] || { say "no .gpu/train (run scripts/gpu_carry.py first)"; exit 1; }
say "MGIF: $(ls .gpu/train/*.webp | wc -l) files, $(du -sm .gpu/train | cut -f1) MB"

# Synthetic creatures for training (seeds 100-105; the evaluation pairs use 9000 and 9100).
for s in 0 1 2 3 4 5; do
    nice $D synth "$W/synth$s" -n "${NS:-100}" --size 128 --seed $((100 + s)) >"$W/synth$s.out" 2>&1 &
done
if [ "$CHECK" -gt 0 ]; then
    $PY scripts/gpu_check.py --configs small128,mgif --budget "$CHECK" --out-dir "$OUT" 2>&1 | tee -a "$LOG"
fi
wait
SYNTH=""
for s in 0 1 2 3 4 5; do  # a failed render leaves its folder out rather than failing training
    if ls "$W/synth$s"/*.gif >/dev/null 2>&1; then
        SYNTH="$SYNTH --data $W/synth$s"
    else
        say "synth $s failed: $(tail -1 "$W/synth$s.out")"
    fi
done
say "synthetic: $(ls "$W"/synth*/*.gif 2>/dev/null | wc -l) videos"

ARGS="--set train.freeze=[] --set train.lr=0.0002 -b 32 --data .gpu/train $SYNTH --val-fraction 0"
ARGS="$ARGS --device $DEV --workers ${WORKERS:-6} --set train.checkpoint_every=1000000"
ARGS="$ARGS --set train.sample_every=1000000 --set train.log_every=100 --set train.ema=${EMA:-0.999}"
RUN=$W/run
# shellcheck disable=SC2086
$D train small128 -o "$RUN" --init donkey/assets/default.safetensors --steps 1000000 $ARGS \
    >"$W/train.out" 2>&1 &
PID=$!
sleep $((P1_END - $(el) > 20 ? P1_END - $(el) : 20))
kill -TERM $PID
wait $PID
step() { $PY -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['step'])" "$RUN/log.jsonl"; }
S=$(step 2>/dev/null)
if [ -z "$S" ] || [ ! -f "$RUN/last.ckpt" ]; then
    say "training failed before its first checkpoint; its output ends:"
    tail -40 "$W/train.out" >>"$LOG"
    gzip -c "$W/train.out" >"$OUT/train.out.gz"
    exit 1
fi
say "high lr: $S steps"
# --steps 1.5 S puts the lr drop (at 2/3 of the steps) at the resume. --init is ignored when
# the run resumes; it is there so a missing checkpoint could never mean random weights.
# shellcheck disable=SC2086
$D train small128 -o "$RUN" --resume auto --init donkey/assets/default.safetensors \
    --steps $((S * 3 / 2 + 2)) $ARGS >>"$W/train.out" 2>&1 &
PID=$!
sleep $((P2_END - $(el) > 10 ? P2_END - $(el) : 10))
kill -TERM $PID
wait $PID
say "low lr: to step $(step)"
tail -5 "$W/train.out" >>"$LOG"

$PY scripts/ship_model.py --keep-discriminator "$RUN/last.ckpt" "$W/stage2b.safetensors" 2>&1 |
    tee -a "$LOG"
split -b 15M "$W/stage2b.safetensors" "$OUT/stage2b.safetensors.part-"
sha256sum "$W/stage2b.safetensors" | tee -a "$LOG"
if [ -f "$RUN/ema.safetensors" ]; then
    split -b 15M "$RUN/ema.safetensors" "$OUT/stage2b-ema.safetensors.part-"
    sha256sum "$RUN/ema.safetensors" | tee -a "$LOG"
fi
# At most 8 files come back from a lent machine: the logs travel as one.
tar -czf "$OUT/logs.tgz" -C "$RUN" log.jsonl -C "$W" train.out
say "done"
ls -la "$OUT" >>"$LOG"
