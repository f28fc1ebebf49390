"""Benchmark: FHIR R4 Bundle -> patient graph conversion, against parsing the same JSON (the floor).

    .venv/bin/python bench/fhir_conversion.py [--repeat 5]

Builds a ~10 MB Synthea-style Bundle from ../shared/data/synthea/ (the largest export, topped up with
entries of another patient's export, re-referenced to the first patient), then times, in one process:
  baseline   json.loads of the bundle (what any reader must at least do)
  convert    neuropathy_kg.fhir.to_patients (parse + recognise + write each patient's N-Triples: what
             recommend and validate run)
  as graph   neuropathy_kg.fhir.to_graph (the same, then one rdflib graph of it, for inspection)
and reports the median seconds and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

from neuropathy_kg import fhir

SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea"


def ten_megabyte_bundle() -> bytes:
    exports = sorted(SYNTHEA.glob("*.json.gz"), key=lambda p: p.stat().st_size, reverse=True)
    if not exports:
        sys.exit(f"no synthetic exports in {SYNTHEA}")
    main = json.loads(gzip.decompress(exports[0].read_bytes()))
    patient_url = next(e["fullUrl"] for e in main["entry"] if e["resource"]["resourceType"] == "Patient")
    size = len(json.dumps(main))
    for other in exports[1:]:
        extra = json.loads(gzip.decompress(other.read_bytes()))
        for entry in extra["entry"]:
            if size >= 10_000_000:
                break
            if entry["resource"]["resourceType"] == "Patient":
                continue
            text = json.dumps(entry)
            for key in ("subject", "patient"):
                if key in entry["resource"]:
                    entry["resource"][key] = {"reference": patient_url}
            main["entry"].append(entry)
            size += len(text) + 2
        if size >= 10_000_000:
            break
    return json.dumps(main).encode()


def median_seconds(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = ten_megabyte_bundle()
    fhir.vocabulary()  # built once per process, like the CLI does on first use
    baseline = median_seconds(lambda: json.loads(data), args.repeat)
    convert = median_seconds(lambda: fhir.to_patients("bench.json", data), args.repeat)
    as_graph = median_seconds(lambda: fhir.to_graph("bench.json", data), args.repeat)
    graph, problems, _count = fhir.to_graph("bench.json", data)
    entries = len(json.loads(data)["entry"])
    print(f"bundle: {len(data) / 1e6:.1f} MB, {entries} entries -> {len(graph)} triples, {len(problems)} problems")
    print(f"baseline json.loads : {baseline:.3f} s")
    print(f"convert (N-Triples) : {convert:.3f} s   ({len(data) / 1e6 / convert:.1f} MB/s), {convert / baseline:.2f}x json.loads")
    print(f"convert, as graph   : {as_graph:.3f} s   {as_graph / baseline:.2f}x json.loads")


if __name__ == "__main__":
    main()
