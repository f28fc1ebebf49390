"""Benchmark: patients per second of one whole CLI run (process start-up included), recommend and validate.

    .venv/bin/python bench/cli_rate.py [--sizes 500 5000] [--rich] [--jobs N] [--baseline REV] [--rounds N]

For each size, a synthetic Bulk NDJSON export (bench/synthetic.py; ``--rich``: the richer relapsing
patients, about 94 triples each instead of 46), then `recommend --jsonl --output FILE` and `validate
--jsonl --output FILE` as one fresh process each, timed from the outside. Prints patients/s and the
cost per patient relative to the smallest size, and the CPU time per patient (user + system of
the CLI and its workers: steadier than seconds on a shared machine) (issue 19, item 5: at least 1,000 patients/s at 5,000
patients, per-patient cost at 5,000 within 1.5x of that at 500).

``--baseline REV``: the same runs of git revision REV (its tree from `git archive REV` in a temporary
folder, run with this venv's Python through PYTHONPATH and NEUROPATHY_KG_HOME), interleaved with this
checkout's (baseline, this, baseline, this... for each size and command), so the machine's phase hits
both alike; prints both rates, the ratio this/baseline, and whether their JSON Lines are the same
(sorted lines). ``--rounds N``: N runs of each, the best kept.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def exported(revision: str, into: Path) -> Path:
    """The tree of ``revision`` of this repository, written to ``into`` (git archive)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run(command: str, export: Path, output: Path, jobs: list[str], tree: Path | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the CLI and its workers)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"], env["NEUROPATHY_KG_HOME"] = str(tree / "src"), str(tree)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "neuropathy_kg", command, "--as-of", "2026-11-24", "--jsonl",
                             *jobs, "--output", str(output), str(export)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 1):
        sys.exit(f"{command} on {export} failed: {result.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--rich", action="store_true")
    parser.add_argument("--jobs", type=int, help="--jobs for the CLI (default: its own choice)")
    parser.add_argument("--baseline", metavar="REV", help="a git revision to run side by side (e.g. 9852dab)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each (best kept)")
    args = parser.parse_args()
    from synthetic import generate

    rows = []
    same: dict[tuple[int, str], bool] = {}
    with tempfile.TemporaryDirectory() as workspace:
        trees: dict[str, Path | None] = {"this": None}
        if args.baseline:
            trees = {args.baseline: exported(args.baseline, Path(workspace) / "baseline"), "this": None}
        jobs = ["--jobs", str(args.jobs)] if args.jobs else []
        for size in args.sizes:
            export = generate(size, Path(workspace) / f"n{size}", seed=size, rich=args.rich)
            megabytes = sum(p.stat().st_size for p in export.iterdir()) / 1e6
            for command in ("recommend", "validate"):
                best = {version: (float("inf"), 0.0) for version in trees}
                for _round in range(args.rounds):
                    for version, tree in trees.items():
                        output = Path(workspace) / f"{command}{size}-{'base' if tree else 'this'}.jsonl"
                        best[version] = min(best[version], run(command, export, output, jobs, tree))
                for version in trees:
                    rows.append((version, size, megabytes, command, *best[version]))
                if args.baseline:
                    lines = [sorted((Path(workspace) / f"{command}{size}-{name}.jsonl").read_bytes().splitlines())
                             for name in ("base", "this")]
                    same[(size, command)] = lines[0] == lines[1]
    print(f"load average: {os.getloadavg()[0]:.2f} (1 min), cores: {os.cpu_count()}")
    print(f"{'version':>10} {'patients':>9} {'MB':>6} {'command':>9} {'seconds':>8} {'patients/s':>10} {'ms/patient':>10} "
          f"{'vs smallest':>11} {'CPU ms/pt':>9}" + (f" {'speed-up':>11} {'same lines':>10}" if args.baseline else ""))
    base = {(version, command): seconds / size for version, size, _mb, command, seconds, _cpu in rows if size == args.sizes[0]}
    baseline = {(size, command): seconds for version, size, _mb, command, seconds, _cpu in rows if version == args.baseline}
    for version, size, megabytes, command, seconds, cpu in rows:
        per = seconds / size
        line = (f"{version:>10} {size:>9} {megabytes:>6.1f} {command:>9} {seconds:>8.2f} {size / seconds:>10.0f} "
                f"{per * 1000:>10.2f} {per / base[(version, command)]:>11.2f} {cpu * 1000 / size:>9.2f}")
        if args.baseline and version == "this":
            line += f" {baseline[(size, command)] / seconds:>10.2f}x {'yes' if same[(size, command)] else 'NO':>10}"
        print(line)


if __name__ == "__main__":
    main()
