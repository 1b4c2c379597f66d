#!/usr/bin/env bash
# Batch animate: one process against `torchrun --nproc_per_node 2`, on the CPU.
#
#   benchmarks/scaling_cpu.sh [WORK_DIR]      # PY=.venv/bin/python by default
#
# 4 synthetic sources x 6 synthetic drivings (`donkey synth`, 64x64, 16-32 frames) = 24 outputs
# with the bundled default model. Three runs, each written to its own folder:
#   1 process, all cores as intra-op threads (what `donkey animate` does by default)
#   1 process, 1 thread (the per-process baseline)
#   2 processes under torchrun, 1 thread each (torchrun's OMP_NUM_THREADS=1)
# and checks the outputs are byte-identical. Prints wall times, the load average before and
# after each run, and writes them to benchmarks/scaling-cpu.json.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
TORCHRUN="${TORCHRUN:-$(dirname "$PY")/torchrun}"
WORK="${1:-$(mktemp -d -t donkey-scaling-XXXXXX)}"
PORT="${PORT:-29631}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

mkdir -p "$WORK"
if [ ! -d "$WORK/sources" ]; then
    "$PY" -m donkey synth "$WORK/sources" --count 4 --size 64 --seed 101 > /dev/null
    "$PY" -m donkey synth "$WORK/drivings" --count 6 --size 64 --seed 202 > /dev/null
fi
frames=$("$PY" -c "
import sys
from donkey.data.probe import frame_count
from pathlib import Path
print(sum(frame_count(p) for p in Path(sys.argv[1]).glob('*.gif')))" "$WORK/drivings")

load() { cut -d' ' -f1 /proc/loadavg; }

# run NAME COMMAND...: wall seconds of one run into $WORK/NAME.seconds, its output in NAME/
run() {
    local name="$1"
    shift
    rm -rf "${WORK:?}/$name"
    local before start end
    before=$(load)
    start=$(date +%s.%N)
    "$@" "$WORK/sources" "$WORK/drivings" -o "$WORK/$name" --device cpu \
        > "$WORK/$name.log" 2>&1 || { echo "$name failed: see $WORK/$name.log" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$(awk "BEGIN {print $end - $start}") $before $(load)" > "$WORK/$name.seconds"
}

run one_process "$PY" -m donkey animate
OMP_NUM_THREADS=1 run one_thread "$PY" -m donkey animate
run two_ranks "$TORCHRUN" --nproc_per_node 2 --master_port "$PORT" -m donkey animate

# Same thread count per process, same arithmetic: the 2-rank outputs must equal the 1-thread
# ones byte for byte. With 2 threads oneDNN sums in another order, which can flip a GIF palette
# entry here and there, so those are only counted.
for f in "$WORK"/one_thread/*; do
    cmp -s "$f" "$WORK/two_ranks/$(basename "$f")" || { echo "two_ranks/$(basename "$f") differs from one_thread" >&2; exit 1; }
done
differing=0
for f in "$WORK"/one_process/*; do
    cmp -s "$f" "$WORK/one_thread/$(basename "$f")" || differing=$((differing + 1))
done
echo "two_ranks == one_thread byte for byte; $differing outputs of one_process (2 threads) differ in rounding"

outputs=$(find "$WORK/one_process" -type f | wc -l)
"$PY" - "$WORK" "$outputs" "$frames" "$(nproc)" "$ROOT/benchmarks/scaling-cpu.json" <<'EOF'
import json, platform, sys, time
from pathlib import Path
work, outputs, frames, cores, target = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
runs = {}
for name in ("one_process", "one_thread", "two_ranks"):
    seconds, before, after = (work / f"{name}.seconds").read_text().split()
    runs[name] = {"wall_s": round(float(seconds), 2), "load_before": float(before), "load_after": float(after)}
    summary = [l for l in (work / f"{name}.log").read_text().splitlines() if "ranks;" in l or "frames; read" in l]
    runs[name]["summary"] = summary
base = runs["one_process"]["wall_s"]
result = {
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "machine": f"{cores} CPUs, {platform.processor() or platform.machine()}",
    "outputs": outputs, "output_frames": frames * 4,
    "runs": runs,
    "speedup_two_ranks_vs_one_process": round(base / runs["two_ranks"]["wall_s"], 2),
    "speedup_two_ranks_vs_one_thread": round(runs["one_thread"]["wall_s"] / runs["two_ranks"]["wall_s"], 2),
}
target.write_text(json.dumps(result, indent=1) + "\n")
for name, r in runs.items():
    print(f"{name:12s} {r['wall_s']:7.1f} s   load average {r['load_before']} -> {r['load_after']}")
print(f"{outputs} outputs, {frames * 4} frames; 2 ranks vs 1 process: x{result['speedup_two_ranks_vs_one_process']}, "
      f"vs 1 thread: x{result['speedup_two_ranks_vs_one_thread']}; wrote {target}")
EOF
