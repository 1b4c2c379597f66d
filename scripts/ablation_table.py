"""Print the ablation table (docs/ablation.md) from scripts/ablation.sh's evaluations.

    python scripts/ablation_table.py ~/donkey-runs/abl

Reads ABL/evals/ROW-sSEED-{val,synth-relative,synth-absolute,real-relative,real-absolute}.json
and ABL/runs/ROW-sSEED/log.jsonl (training speed). Rows with several seeds get a mean row
and the spread (max - min) of each column.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ORDER = ["shipped", "control", "dual", "attention", "msfm", "disc-driving", "full"]
COLUMNS = [
    ("val", "l1", "MGIF val rec."),
    ("synth-relative", "transfer_l1", "synth transfer (rel.)"),
    ("synth-absolute", "transfer_l1", "synth transfer (abs.)"),
    ("real-relative", "transfer_l1", "real val pair (rel.)"),
    ("real-absolute", "transfer_l1", "real val pair (abs.)"),
]


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _speed(run: Path) -> str:
    try:
        lines = (run / "log.jsonl").read_text().splitlines()
    except OSError:
        return "-"
    records = [json.loads(line) for line in lines if line.strip()]
    # `seconds` restarts at each resume: time only the last sitting.
    start = max(
        (i for i in range(1, len(records)) if records[i]["seconds"] < records[i - 1]["seconds"]),
        default=0,
    )
    last = records[start:]
    if not last or last[-1]["seconds"] <= 0:
        return "-"
    return f"{len(last) / last[-1]['seconds']:.2f}"


def collect(abl: Path) -> dict[str, dict[int, list[float | None]]]:
    rows: dict[str, dict[int, list[float | None]]] = {}
    for path in sorted((abl / "evals").glob("*-val.json")):
        match = re.fullmatch(r"(.+)-s(\d+)-val\.json", path.name)
        if not match:
            continue
        row, seed = match.group(1), int(match.group(2))
        values = []
        for suffix, key, _ in COLUMNS:
            data = _read(abl / "evals" / f"{row}-s{seed}-{suffix}.json")
            values.append(None if data is None else float(data[key]))
        rows.setdefault(row, {})[seed] = values
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def table(abl: Path) -> str:
    rows = collect(abl)
    head = "| row | seed | " + " | ".join(c[2] for c in COLUMNS) + " | steps/s |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for row in sorted(rows, key=lambda r: (ORDER.index(r) if r in ORDER else 99, r)):
        seeds = rows[row]
        for seed, values in sorted(seeds.items()):
            speed = "-" if row == "shipped" else _speed(abl / "runs" / f"{row}-s{seed}")
            cells = " | ".join(_fmt(v) for v in values)
            lines.append(f"| {row} | {seed} | {cells} | {speed} |")
        if len(seeds) > 1:
            cols = list(zip(*seeds.values()))
            means, spreads = [], []
            for col in cols:
                known = [v for v in col if v is not None]
                means.append(sum(known) / len(known) if known else None)
                spreads.append(max(known) - min(known) if known else None)
            lines.append(f"| {row} | mean | " + " | ".join(_fmt(v) for v in means) + " | |")
            lines.append(f"| {row} | spread | " + " | ".join(_fmt(v) for v in spreads) + " | |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(table(Path(sys.argv[1]).expanduser()))
