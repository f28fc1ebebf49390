"""Benchmark: CPU instructions per patient of the population path, this tree against an earlier revision.

    .venv/bin/python bench/instructions.py [--baseline REV] [--patients 1000]

Wall-clock numbers on a shared virtual machine move by a third from one minute to the next; the count of
instructions a process executes hardly does (valgrind's callgrind counts them; runs of the same code and
input have differed by up to 3 %: Python's hash seed, the path the tree sits at). Each version runs its
own worker path (bench/population.py's fast path, in one process): read a FHIR Bulk NDJSON export of
--patients synthetic patients (bench/synthetic.py), convert it, derive facts, recommend, validate and
write JSON Lines, in chunks of that version's CHUNK_SIZE. The count for
the same process started with no patients is subtracted, so start-up and loading the guideline are left
out. The baseline is checked out into a temporary git worktree (nothing in this tree changes). Needs
valgrind (Debian: valgrind); about two minutes per version and 1,000 patients.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

#: Run in the measured process: the version's own reader and pipeline, as a worker runs them.
DRIVER = r"""
import datetime as dt, json, sys
from neuropathy_kg import batch, fhir, pipeline
batch.warm_up()
count, export = int(sys.argv[1]), sys.argv[2]
if count:
    assess = lambda chunk: pipeline.assess_chunk(chunk, dt.date(2026, 11, 24))
    if hasattr(batch, "as_json_lines"):
        work = batch.as_json_lines(assess)
    else:  # revisions before JSON Lines were written in the workers
        work = lambda chunk: [json.dumps(result, ensure_ascii=False) + "\n" for result in assess(chunk)]
    patients = fhir.to_patients("export", open(export, "rb").read(), True)[0][:count]
    size = pipeline.CHUNK_SIZE["oxigraph"]
    for start in range(0, len(patients), size):
        work(patients[start:start + size])
"""


def instructions(tree: Path, count: int, export: Path) -> int:
    """Instructions executed by the driver on ``count`` patients, with ``tree``'s package and guideline."""
    env = {"PYTHONPATH": str(tree / "src"), "NEUROPATHY_KG_HOME": str(tree), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                             "-c", DRIVER, str(count), str(export)], capture_output=True, text=True, env=env)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        problem = [line for line in result.stderr.splitlines() if not line.startswith("==")][-1:]
        raise SystemExit(f"valgrind run failed in {tree}: {problem}")
    return int(found.group(1))


def per_patient(tree: Path, count: int, export: Path) -> float:
    return (instructions(tree, count, export) - instructions(tree, 0, export)) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="e742662", help="git revision to compare with (default: the start of issue 5's third session)")
    parser.add_argument("--patients", type=int, default=1000)
    args = parser.parse_args()
    from synthetic import generate

    with tempfile.TemporaryDirectory() as workspace:
        folder = generate(args.patients, Path(workspace) / "export", seed=args.patients)
        export = Path(workspace) / "export.ndjson"
        export.write_bytes(b"".join(path.read_bytes() for path in sorted(folder.iterdir())))
        baseline = Path(workspace) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline],
                       check=True, capture_output=True)
        try:
            rows = [(f"baseline {args.baseline}", per_patient(baseline, args.patients, export)),
                    ("this tree", per_patient(ROOT, args.patients, export))]
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)], capture_output=True)
    print(f"{'version':<22} {'instructions/patient':>21} {'vs baseline':>11}")
    for name, value in rows:
        print(f"{name:<22} {value:>21,.0f} {rows[0][1] / value:>10.2f}x")
    print(f"{args.patients} synthetic patients, whole worker path (read, facts, recommend, validate, JSON Lines)")


if __name__ == "__main__":
    main()
