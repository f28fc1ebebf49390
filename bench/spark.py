"""Benchmark: the embedded path against Apache Spark (issue 19), one run side by side, each a CLI run.

    .venv/bin/python bench/spark.py [--sizes 20000 100000] [--small 200] [--equivalence 10000] [--rich]

For --small, then each size in the order given, on the same synthetic NDJSON export (bench/synthetic.py):
  embedded    recommend --jsonl --jobs 2 --output FILE
  spark 1     recommend --spark local[1] --jsonl --output DIR
  spark 2     recommend --spark local[2] --jsonl --output DIR
each a fresh process (start-up included), and checks that the three wrote the same set of lines. Spark's
fixed cost (JVM, SparkContext, Python workers, the guideline parsed in each, the jobs' scheduling) is
read from a run on --small patients; its per-patient cost per core from local[1] with that subtracted;
the speed-up from 1 to 2 cores from the same per-patient parts. From those it projects a 10^7-patient
export on 64 cores. Each CLI run's time and the load average go to standard error as it ends; Ctrl-C
(SIGINT) reports the sizes that finished. ``--equivalence N``: recommend and validate, embedded and Spark local[2], on N
patients: the sets of lines must be equal (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CLI = [sys.executable, "-m", "neuropathy_kg"]
AS_OF = "2026-11-24"


def timed(args: list[str]) -> tuple[float, int]:
    """One CLI run: seconds and exit code; each run's time and the load average also go to standard
    error as it ends (a run stopped part-way keeps what it measured)."""
    started = time.perf_counter()
    result = subprocess.run(CLI + args, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 1):
        sys.exit(f"{' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    print(json.dumps({"run": " ".join(args[:6]), "seconds": round(seconds, 1), "load": os.getloadavg()[0],
                      "at": time.strftime("%H:%M:%S", time.gmtime())}), file=sys.stderr, flush=True)
    return seconds, result.returncode


def lines_of(path: Path) -> list[str]:
    files = sorted(path.glob("part-*")) if path.is_dir() else [path]
    return sorted(line for f in files for line in f.read_text(encoding="utf-8").splitlines())


def run_size(export: Path, work: Path, command: str = "recommend", masters=("local[1]", "local[2]")) -> dict:
    """Seconds of each run on one export, and whether every run wrote the embedded run's lines."""
    embedded = work / f"{command}-embedded.jsonl"
    row = {"embedded": timed([command, "--as-of", AS_OF, "--jsonl", "--jobs", "2", "--output", str(embedded), str(export)])[0]}
    expected, same = lines_of(embedded), True
    for master in masters:
        folder = work / f"{command}-{master.strip('local[]')}"
        row[master] = timed([command, "--as-of", AS_OF, "--spark", master, "--jsonl", "--output", str(folder), str(export)])[0]
        same = same and lines_of(folder) == expected
    row.update(patients=len(expected), same=same)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--equivalence", type=int, default=0)
    parser.add_argument("--rich", action="store_true")
    args = parser.parse_args()
    rows = []
    try:
        measure(args, rows)
    except KeyboardInterrupt:  # stopped before the end: report the sizes that finished
        print("interrupted: the sizes that finished", file=sys.stderr)
        if len(rows) > 0:
            report(rows, {})
        sys.exit(1)


def measure(args, rows: list[dict]) -> None:
    from synthetic import generate

    with tempfile.TemporaryDirectory() as workspace:
        root = Path(workspace)
        for size in [args.small, *args.sizes]:
            export = generate(size, root / f"n{size}", seed=size, rich=args.rich)
            work = root / f"out{size}"
            work.mkdir()
            rows.append({"size": size, "megabytes": sum(p.stat().st_size for p in export.iterdir()) / 1e6,
                         **run_size(export, work)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        equivalence = {}
        if args.equivalence:
            export = generate(args.equivalence, root / "equivalence", seed=args.equivalence, rich=args.rich)
            for command in ("recommend", "validate"):
                work = root / f"equivalence-{command}"
                work.mkdir()
                equivalence[command] = run_size(export, work, command, masters=("local[2]",))
                print(json.dumps({command: equivalence[command]}), file=sys.stderr, flush=True)
    report(rows, equivalence)
    if not all(row["same"] for row in rows) or not all(row["same"] for row in equivalence.values()):
        sys.exit(1)


def report(rows: list[dict], equivalence: dict) -> None:
    small, big = rows[0], rows[1:]
    print(f"{'patients':>9} {'MB':>6} {'embedded s':>10} {'p/s':>6} {'local[1] s':>10} {'p/s':>6} {'local[2] s':>10} "
          f"{'p/s':>6} {'same':>5}")
    for row in rows:
        print(f"{row['patients']:>9} {row['megabytes']:>6.1f} " + " ".join(
            f"{row[k]:>10.1f} {row['patients'] / row[k]:>6.0f}" for k in ("embedded", "local[1]", "local[2]"))
              + f" {str(row['same']):>5}")
    for row in big:
        extra = row["patients"] - small["patients"]
        core = (row["local[1]"] - small["local[1]"]) / extra  # seconds per patient on one core, fixed cost out
        two = (row["local[2]"] - small["local[2]"]) / extra
        speedup = core / two
        efficiency = speedup / 2
        projected = 1e7 * core / (64 * efficiency)
        print(f"{row['patients']} patients: Spark fixed cost {small['local[1]']:.1f} s (local[1]) / {small['local[2]']:.1f} s "
              f"(local[2]) on {small['patients']} patients; per patient and core {core * 1000:.2f} ms "
              f"(embedded --jobs 2: {row['embedded'] / row['patients'] * 2000:.2f} ms of 2 cores); 1 -> 2 cores "
              f"{speedup:.2f}x; local[2] / embedded {row['local[2]'] / row['embedded']:.2f}x the time; 10^7 patients on "
              f"64 cores at {efficiency:.0%} efficiency per core: {projected / 60:.0f} min plus the fixed cost")
    for command, row in equivalence.items():
        print(f"equivalence {command}: {row['patients']} patients, embedded --jobs 2 {row['embedded']:.1f} s, "
              f"Spark local[2] {row['local[2]']:.1f} s, same lines: {row['same']}")


if __name__ == "__main__":
    main()
