"""Equivalence at scale: the fast path gives every patient exactly the reference path's actions and findings.

    .venv/bin/python bench/equivalence.py --size 10000 --jobs 2

  fast path   what `recommend` and `validate` run (pipeline.assess_chunk): facts derived once per chunk
              of about 1,000 patients on Oxigraph (pipeline.CHUNK_SIZE), action queries and compiled SHACL shapes set-based over the chunk
  reference   each patient alone on rdflib's SPARQL engine (facts and action queries), validated by
              pySHACL (pipeline.assess with engine "rdflib")

Both read the same synthetic FHIR Bulk NDJSON export (bench/synthetic.py, seed = size). Prints progress
on standard error, then one JSON line: patients compared, mismatches (patient id and the first field
that differs), how many actions and findings of how many distinct ids the population exercised, the
catalogue ids it did not exercise (none, for 10,000 patients), and the time each path took. Exit status
1 if any patient differs. tests/test_population.py runs the same comparison on 80 patients in the suite
and on NKG_BENCH_POPULATION patients as a `bench` test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
AS_OF = dt.date(2026, 11, 24)


def first_difference(fast: object, reference: object, where: str = "") -> str | None:
    """The path of the first place two JSON values differ, with both values, or None."""
    if type(fast) is not type(reference):
        return f"{where or '/'}: {fast!r} != {reference!r}"
    if isinstance(fast, dict):
        for key in sorted(set(fast) | set(reference)):
            if key not in fast or key not in reference:
                return f"{where}/{key}: only in {'fast' if key in fast else 'reference'}"
            found = first_difference(fast[key], reference[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(fast, list):
        if len(fast) != len(reference):
            return f"{where}: {len(fast)} items != {len(reference)}: {fast!r} != {reference!r}"
        for index, (a, b) in enumerate(zip(fast, reference)):
            found = first_difference(a, b, f"{where}/{index}")
            if found:
                return found
        return None
    return None if fast == reference else f"{where or '/'}: {fast!r} != {reference!r}"


def compare_chunk(patients: list) -> list[dict]:
    """Per patient: its id, the first difference between the paths (None if identical), its action and
    finding ids, and the seconds each path took for the chunk (on the chunk's first row)."""
    from neuropathy_kg.pipeline import assess, assess_chunk

    started = time.perf_counter()
    fast = assess_chunk(patients, AS_OF)
    fast_seconds = time.perf_counter() - started
    recommended, validated = assess(patients, AS_OF, "rdflib")
    reference_seconds = time.perf_counter() - started - fast_seconds
    rows = []
    for fast_result, reference_recommend, reference_validate in zip(fast, recommended["patients"], validated["patients"]):
        difference = (first_difference(fast_result["recommend"], reference_recommend, "/recommend")
                      or first_difference(fast_result["validate"], reference_validate, "/validate"))
        rows.append({
            "patient": fast_result["recommend"]["patient"],
            "difference": difference,
            "actions": [a["id"] for a in fast_result["recommend"]["actions"]],
            "findings": [f["id"] for f in fast_result["validate"]["findings"]],
            "fastSeconds": 0.0, "referenceSeconds": 0.0,
        })
    if rows:
        rows[0].update(fastSeconds=fast_seconds, referenceSeconds=reference_seconds)
    return rows


def compare_export(folder: Path, jobs: int, progress=None) -> dict:
    """Compare both paths over every patient of an export, on ``jobs`` worker processes."""
    from neuropathy_kg import batch, guideline
    from neuropathy_kg.pipeline import CHUNK_SIZE

    batch.warm_up()
    started = time.perf_counter()
    compared, mismatches, errors = 0, [], []
    actions, findings = Counter(), Counter()
    fast_seconds = reference_seconds = 0.0
    for rows in batch.run([str(folder)], CHUNK_SIZE["oxigraph"], compare_chunk, jobs, on_errors=errors.extend):
        for row in rows:
            compared += 1
            actions.update(row["actions"])
            findings.update(row["findings"])
            fast_seconds += row["fastSeconds"]
            reference_seconds += row["referenceSeconds"]
            if row["difference"]:
                mismatches.append({"patient": row["patient"], "difference": row["difference"]})
        if progress:
            progress(compared, time.perf_counter() - started)
    return {
        "patients": compared,
        "mismatches": mismatches,
        "inputErrors": [str(e) for e in errors],
        "actions": sum(actions.values()), "distinctActions": len(actions),
        "findings": sum(findings.values()), "distinctFindings": len(findings),
        "unexercised": sorted(set(guideline.catalogue()) - set(actions) - set(findings)),
        "fastSeconds": round(fast_seconds, 1), "referenceSeconds": round(reference_seconds, 1),
        "wallSeconds": round(time.perf_counter() - started, 1), "jobs": jobs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rich", action="store_true", help="the richer population (bench/synthetic.py --rich)")
    args = parser.parse_args()
    from synthetic import generate

    def progress(done: int, seconds: float) -> None:
        rate = done / seconds if seconds else 0
        left = (args.size - done) / rate if rate else 0
        print(f"{done}/{args.size} patients compared, {seconds:.0f} s, about {left / 60:.0f} min left",
              file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as workspace:
        folder = generate(args.size, Path(workspace) / "export", seed=args.size, rich=args.rich)
        summary = compare_export(folder, args.jobs, progress)
    print(json.dumps(summary))
    sys.exit(1 if summary["mismatches"] or summary["patients"] != args.size else 0)


if __name__ == "__main__":
    main()
