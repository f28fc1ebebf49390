"""Benchmark: a whole population, FHIR Bulk NDJSON in, actions and findings out, against the reference.

    .venv/bin/python bench/population.py [--sizes 20 2000 20000] [--reference-sample 100] [--jobs 2]

In one run it reports, side by side:
  fast path   batch.run over the synthetic export (bench/synthetic.py): facts derived once per chunk of
              about 1,000 patients on Oxigraph (pipeline.CHUNK_SIZE), actions and compiled SHACL shapes set-based over the chunk,
              on --jobs worker processes, each patient's actions and findings written as a JSON line;
              each size in a fresh process, so its peak memory is its own
  reference   each patient alone on rdflib's engine (facts, actions) and pySHACL (findings), on a sample
and prints patients/s, seconds per patient, peak resident memory, the fast/reference ratio, the cost
per patient at each size relative to the smallest, and a cold one-patient CLI start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
AS_OF = dt.date(2026, 11, 24)


def run_fast(folder: Path, jobs: int) -> dict:
    """Runs in its own process: the fast path over one export, results written as JSON Lines (as
    `recommend --jsonl` and `validate --jsonl` write them, here both per patient from one derivation)."""
    from neuropathy_kg import batch
    from neuropathy_kg.pipeline import CHUNK_SIZE, assess_chunk

    batch.warm_up()
    started = time.perf_counter()
    patients = written = 0
    with tempfile.TemporaryFile("w", encoding="utf-8") as out:
        for chunk in batch.run([str(folder)], CHUNK_SIZE["oxigraph"], batch.as_json_lines(lambda p: assess_chunk(p, AS_OF)), jobs):
            patients += len(chunk)
            written += out.write("".join(line for _conforms, line in chunk))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"patients": patients, "seconds": seconds, "output_mb": written / 1e6, "peak_mb": peak / 1024}


def run_reference(folder: Path, sample: int) -> dict:
    """The reference path per patient: rdflib's engine for facts and actions, pySHACL for findings. One
    patient first, untimed, so that it is warm as the fast path is (its queries parsed once)."""
    from neuropathy_kg.load import read_patients
    from neuropathy_kg.pipeline import assess

    patients, _errors = read_patients([str(folder)])
    assess(patients[-1:], AS_OF, "rdflib")
    patients = patients[:sample]
    started = time.perf_counter()
    assess(patients, AS_OF, "rdflib")
    return {"patients": len(patients), "seconds": time.perf_counter() - started}


def in_subprocess(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 2000, 20000])
    parser.add_argument("--reference-sample", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rich", action="store_true", help="the richer population (bench/synthetic.py --rich)")
    parser.add_argument("--fast-one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--reference-one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fast_one:
        print(json.dumps(run_fast(args.fast_one, args.jobs)))
        return
    if args.reference_one:
        print(json.dumps(run_reference(args.reference_one, args.reference_sample)))
        return
    from synthetic import generate

    with tempfile.TemporaryDirectory() as workspace:
        rows = []
        for size in args.sizes:
            folder = generate(size, Path(workspace) / f"n{size}", seed=size, rich=args.rich)
            megabytes = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            stats = in_subprocess("--fast-one", str(folder), "--jobs", str(args.jobs))
            stats.update(size=size, megabytes=megabytes)
            rows.append(stats)
        sample_folder = generate(args.reference_sample, Path(workspace) / "reference", seed=args.reference_sample, rich=args.rich)
        reference = in_subprocess("--reference-one", str(sample_folder), "--reference-sample", str(args.reference_sample))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "neuropathy_kg.cli", "recommend", "--as-of", "2026-11-24", "--format", "json",
                        str(HERE.parent / "examples" / "01-responder-relapse.ttl")], capture_output=True, check=True)
        cold = time.perf_counter() - started
    reference_rate = reference["patients"] / reference["seconds"]
    base = rows[0]["seconds"] / rows[0]["patients"]
    print(f"{'patients':>9} {'NDJSON MB':>9} {'seconds':>8} {'patients/s':>10} {'ms/patient':>10} {'vs smallest':>11} {'peak MB':>8} {'x reference':>11}")
    for row in rows:
        rate = row["patients"] / row["seconds"]
        per = row["seconds"] / row["patients"]
        print(f"{row['patients']:>9} {row['megabytes']:>9.1f} {row['seconds']:>8.2f} {rate:>10.0f} {per * 1000:>10.2f} "
              f"{per / base:>11.2f} {row['peak_mb']:>8.0f} {rate / reference_rate:>11.0f}")
    print(f"reference (rdflib + pySHACL per patient, actions and findings, {reference['patients']} patients): "
          f"{reference_rate:.1f} patients/s, {1000 / reference_rate:.0f} ms/patient")
    print(f"cold CLI, one patient (recommend): {cold:.2f} s; jobs={args.jobs}")


if __name__ == "__main__":
    main()
