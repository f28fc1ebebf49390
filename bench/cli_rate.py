"""Benchmark: patients per second of one whole CLI run (process start-up included), recommend and validate.

    .venv/bin/python bench/cli_rate.py [--sizes 500 5000] [--rich] [--jobs N]

For each size, a synthetic Bulk NDJSON export (bench/synthetic.py; ``--rich``: the richer relapsing
patients, about 94 triples each instead of 46), then `recommend --jsonl --output FILE` and `validate
--jsonl --output FILE` as one fresh process each, timed from the outside. Prints patients/s and the
cost per patient relative to the smallest size (issue 19, item 5: at least 1,000 patients/s at 5,000
patients, per-patient cost at 5,000 within 1.5x of that at 500).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--rich", action="store_true")
    parser.add_argument("--jobs", type=int, help="--jobs for the CLI (default: its own choice)")
    args = parser.parse_args()
    from synthetic import generate

    rows = []
    with tempfile.TemporaryDirectory() as workspace:
        for size in args.sizes:
            export = generate(size, Path(workspace) / f"n{size}", seed=size, rich=args.rich)
            megabytes = sum(p.stat().st_size for p in export.iterdir()) / 1e6
            for command in ("recommend", "validate"):
                jobs = ["--jobs", str(args.jobs)] if args.jobs else []
                started = time.perf_counter()
                result = subprocess.run([sys.executable, "-m", "neuropathy_kg", command, "--as-of", "2026-11-24", "--jsonl",
                                         *jobs, "--output", str(Path(workspace) / f"{command}{size}.jsonl"), str(export)],
                                        capture_output=True, text=True)
                seconds = time.perf_counter() - started
                if result.returncode not in (0, 1):
                    sys.exit(f"{command} on {size} patients failed: {result.stderr[-2000:]}")
                rows.append((size, megabytes, command, seconds))
    print(f"{'patients':>9} {'MB':>6} {'command':>9} {'seconds':>8} {'patients/s':>10} {'ms/patient':>10} {'vs smallest':>11}")
    base = {command: seconds / size for size, _mb, command, seconds in rows if size == args.sizes[0]}
    for size, megabytes, command, seconds in rows:
        per = seconds / size
        print(f"{size:>9} {megabytes:>6.1f} {command:>9} {seconds:>8.2f} {size / seconds:>10.0f} {per * 1000:>10.2f} "
              f"{per / base[command]:>11.2f}")


if __name__ == "__main__":
    main()
