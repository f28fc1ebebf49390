"""Benchmark: where a worker's time goes, per patient, stage by stage and query by query.

    .venv/bin/python bench/stages.py [--patients 2000] [--top 15]

One process runs the worker path (bench/population.py's fast path without the worker pool) over a
synthetic FHIR Bulk NDJSON export (bench/synthetic.py): read and convert, load into Oxigraph, the fact
updates, recommend (patient facts, missing data, action queries), validate (compiled shapes), JSON
Lines; in chunks of pipeline.CHUNK_SIZE. Each update and query is timed by wrapping OxigraphStore's
update and select_terms. Prints milliseconds per patient for each stage, then the costliest queries.
Wall-clock: read it beside the machine's phase, not as a gain or loss (bench/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
AS_OF = dt.date(2026, 11, 24)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--rich", action="store_true", help="the richer population (bench/synthetic.py --rich)")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    from synthetic import generate

    from neuropathy_kg import batch, engine, fhir, guideline, pipeline

    names = {update: f"facts/{name}" for name, update in guideline.fact_updates()}
    names.update({query: f"actions/{name}" for name, query in guideline.action_queries()})
    names.update({guideline.report_query(name): f"report/{name}" for name in ("patient-facts", "missing-data")})
    names.update({shape.query: f"shapes/{shape.shape.rsplit('/', 1)[-1]}" for shape in pipeline.compiled_shapes()})
    seconds: Counter[str] = Counter()
    update, select_terms = engine.OxigraphStore.update, engine.OxigraphStore.select_terms

    def timed(method):
        def run(store, sparql):
            started = time.perf_counter()
            try:
                return method(store, sparql)
            finally:
                seconds[names.get(sparql, "other")] += time.perf_counter() - started
        return run

    engine.OxigraphStore.update, engine.OxigraphStore.select_terms = timed(update), timed(select_terms)
    batch.warm_up()
    with tempfile.TemporaryDirectory() as workspace:
        folder = generate(args.patients, Path(workspace) / "export", seed=args.patients, rich=args.rich)
        data = b"".join(path.read_bytes() for path in sorted(folder.glob("*.ndjson")))
    started = time.perf_counter()
    patients = fhir.to_patients("export", data, True)[0]
    seconds["read"] = time.perf_counter() - started
    size = pipeline.CHUNK_SIZE["oxigraph"]
    for first in range(0, len(patients), size):
        chunk = patients[first:first + size]
        facts_before = sum(spent for name, spent in seconds.items() if name.startswith("facts/"))
        started = time.perf_counter()
        store = pipeline.derive(chunk, AS_OF)  # load, then the fact updates (timed one by one)
        facts = sum(spent for name, spent in seconds.items() if name.startswith("facts/")) - facts_before
        seconds["load"] += time.perf_counter() - started - facts
        started = time.perf_counter()
        recommended = pipeline._recommend_chunk(store, chunk)
        seconds["recommend (all)"] += time.perf_counter() - started
        started = time.perf_counter()
        validated = pipeline._validate_chunk(store, chunk)
        seconds["validate (all)"] += time.perf_counter() - started
        started = time.perf_counter()
        batch.as_json_lines(lambda _chunk: [{"recommend": r, "validate": v} for r, v in zip(recommended, validated)])(chunk)
        seconds["json"] += time.perf_counter() - started

    count = len(patients)
    stages: Counter[str] = Counter()
    for name, spent in seconds.items():
        stages[name.split("/")[0]] += spent
    print(f"{count} patients, chunks of {size}; milliseconds per patient")
    for name, spent in stages.most_common():
        print(f"  {name:<40} {1000 * spent / count:7.3f}")
    print("costliest queries")
    for name, spent in Counter({k: v for k, v in seconds.items() if "/" in k}).most_common(args.top):
        print(f"  {name:<60} {1000 * spent / count:7.3f}")


if __name__ == "__main__":
    main()
