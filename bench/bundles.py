"""Benchmark: a folder of FHIR Bundles (one per patient, as EHR exports and Synthea write them) through
one whole CLI run, this checkout side by side with a baseline source tree, as ratios.

    .venv/bin/python bench/bundles.py --baseline-src /tmp/old/src [--patients 2000] [--jobs 1 2] [--rounds 2] [--one]

Since issue 14's last round every FHIR input of a run is one export: each Bundle is written as export
lines and spooled into the patient buckets with the NDJSON lines (a patient split over Bundles is one
patient), where it was read and converted by itself before. ``--one``: all patients in one Bundle
instead (where the old path already made one unit: the cost of writing and parsing it twice). This measures what that costs: the same
Bundles, `recommend --jsonl --output FILE`, baseline and current alternated in each round (the machine
is shared: ratios, not absolute rates). The baseline tree is a `git archive` of an earlier commit's
src/ (run with NEUROPATHY_KG_HOME at this checkout for the guideline files).
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
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def bundles(count: int, folder: Path, one: bool = False) -> Path:
    """``count`` synthetic patients (bench/synthetic.py), one collection Bundle per patient (or one in all)."""
    from synthetic import generate

    export = generate(count, folder / "ndjson", seed=count)
    by_patient: dict[str, list[dict]] = {}
    for path in sorted(export.iterdir()):
        for line in path.read_text(encoding="utf-8").splitlines():
            resource = json.loads(line)
            reference = (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
            pid = resource["id"] if resource["resourceType"] == "Patient" else reference.rsplit("/", 1)[-1]
            by_patient.setdefault(pid, []).append(resource)
    out = folder / "bundles"
    out.mkdir()
    if one:
        by_patient = {"all": [r for resources in by_patient.values() for r in resources]}
    for pid, resources in by_patient.items():
        (out / f"{pid}.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                                     "entry": [{"resource": r} for r in resources]}), encoding="utf-8")
    return out


def timed(src: str | None, folder: Path, output: Path, jobs: int) -> float:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"], env["NEUROPATHY_KG_HOME"] = src, str(ROOT)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "neuropathy_kg", "recommend", "--as-of", "2026-11-24", "--jsonl", "--jobs", str(jobs),
                    "--output", str(output), str(folder)], check=True, env=env, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", required=True)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", action="store_true", help="all patients in one Bundle")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workspace:
        folder = bundles(args.patients, Path(workspace), args.one)
        megabytes = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        print(f"{args.patients} patients, {len(list(folder.iterdir()))} Bundles, {megabytes:.1f} MB")
        for jobs in args.jobs:
            base, now = [], []
            for _round in range(args.rounds):
                base.append(timed(args.baseline_src, folder, Path(workspace) / "base.jsonl", jobs))
                now.append(timed(None, folder, Path(workspace) / "now.jsonl", jobs))
            same = sorted((Path(workspace) / "base.jsonl").read_text().splitlines()) == sorted((Path(workspace) / "now.jsonl").read_text().splitlines())
            print(f"--jobs {jobs}: baseline {min(base):.1f} s, current {min(now):.1f} s (best of {args.rounds}), "
                  f"current/baseline {min(now) / min(base):.2f}x; same lines: {same}")


if __name__ == "__main__":
    main()
