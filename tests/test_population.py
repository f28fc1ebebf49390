"""Population runs: the fast path (facts, actions and compiled shapes set-based over chunks of patients
on Oxigraph) gives exactly the reference path's results (rdflib's engine per patient, pySHACL), on every
fixture and on a synthetic population; chunked derivation gives the per-patient results; NDJSON bucketing, worker processes and JSON Lines change nothing but speed."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from conftest import ROOT, expected, scenario_input, scenario_names
from neuropathy_kg import batch, ndjson, pipeline
from neuropathy_kg.load import read_patients

sys.path.insert(0, str(ROOT / "bench"))
from equivalence import compare_chunk, compare_export  # noqa: E402
from synthetic import generate  # noqa: E402

AS_OF = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    folder = generate(80, tmp_path_factory.mktemp("population") / "export", seed=11)
    patients, errors = read_patients([str(folder)])
    assert not errors and len(patients) == 80
    return folder, patients


@pytest.mark.parametrize("name", scenario_names())
def test_compiled_shapes_equal_pyshacl_on_fixtures(name):
    patients, _ = read_patients([str(scenario_input(name))])
    as_of = dt.date.fromisoformat(expected(name)["asOf"])
    assert pipeline.validate(patients, as_of, "oxigraph", "compiled") == pipeline.validate(patients, as_of, "oxigraph", "pyshacl")


def test_fast_path_equals_the_reference_on_a_synthetic_population(population):
    """The fast path (Oxigraph, chunk of 80, compiled shapes) against the reference (rdflib's engine per
    patient, pySHACL): identical actions, facts, missing data and findings for every patient."""
    folder, _patients = population
    summary = compare_export(folder, jobs=1)
    assert summary["patients"] == 80 and summary["inputErrors"] == []
    assert summary["mismatches"] == []
    assert summary["distinctActions"] >= 15 and summary["distinctFindings"] >= 12, "the population exercises most rules"


def test_the_comparison_sees_a_changed_dose(population, monkeypatch):
    """The equivalence check itself can fail: one dose changed on the fast path is reported, and where."""
    _folder, patients = population
    real = pipeline.assess_chunk

    def one_dose_off(chunk, as_of):
        results = real(chunk, as_of)
        for action in results[0]["recommend"]["actions"]:
            if "dose" in action:
                action["dose"]["unit"] = "g"
                break
        return results

    with_dose = next(p for p in patients if any("dose" in a for a in pipeline.recommend([p], AS_OF)["patients"][0]["actions"]))
    monkeypatch.setattr(pipeline, "assess_chunk", one_dose_off)
    rows = compare_chunk([with_dose, patients[0] if patients[0] is not with_dose else patients[1]])
    assert "/dose/unit" in rows[0]["difference"] and rows[1]["difference"] is None


def test_chunked_recommendations_equal_per_patient(population, monkeypatch):
    _folder, patients = population
    chunked = pipeline.recommend(patients, AS_OF, "oxigraph")
    monkeypatch.setitem(pipeline.CHUNK_SIZE, "oxigraph", 1)
    assert pipeline.recommend(patients, AS_OF, "oxigraph") == chunked
    assert sum(len(p["actions"]) for p in chunked["patients"]) > 300


@pytest.mark.parametrize("count,size,expected", [
    (0, 1000, []), (1, 1000, [1]), (1100, 1000, [1100]), (1499, 1000, [1499]), (1600, 1000, [800, 800]),
    (2000, 1000, [1000, 1000]), (5, 1, [1, 1, 1, 1, 1]), (7, 3, [3, 4]),
])
def test_chunks_are_balanced(count, size, expected):
    """A chunk pays a fixed cost, so a small remainder never makes a chunk of its own (at most 1.5 x size)."""
    from neuropathy_kg.load import chunks

    found = list(chunks(list(range(count)), size))
    assert [len(chunk) for chunk in found] == expected
    assert [item for chunk in found for item in chunk] == list(range(count))


def test_more_buckets_change_nothing(population, monkeypatch):
    folder, patients = population
    one = [p for b in batch.batches([str(folder)], 50) for p in b.patients]
    monkeypatch.setattr(ndjson, "BUCKET_BYTES", 20_000)
    many = [p for b in batch.batches([str(folder)], 50) for p in b.patients]
    assert sorted(p.id for p in one) == sorted(p.id for p in many) == sorted(p.id for p in patients)
    by_id = {p.id: len(p.graph) for p in one}
    assert {p.id: len(p.graph) for p in many} == by_id


def test_parallel_spooling_gives_the_buckets_one_process_would(population, tmp_path, monkeypatch):
    """A large export is spooled by every worker at once, each a contiguous part; put back together, the
    buckets hold the same lines in the same order, and a bad line is reported with its own file and
    line number whichever part read it."""
    import multiprocessing
    from pathlib import Path

    folder, _patients = population
    export = tmp_path / "export"
    export.mkdir()
    for path in sorted(folder.iterdir()):
        lines = path.read_bytes().splitlines(keepends=True)
        if path.name == "Observation.ndjson":  # a bad line three quarters of the way through a file
            lines.insert(len(lines) * 3 // 4, b'{"resourceType": "Observation", "id": "broken"\n')
        (export / path.name).write_bytes(b"".join(lines))
    bad_line = (export / "Observation.ndjson").read_bytes().splitlines().index(b'{"resourceType": "Observation", "id": "broken"') + 1
    files = [(str(path), path) for path in sorted(export.iterdir())]
    monkeypatch.setattr(ndjson, "PARALLEL_SPOOL_BYTES", 0)

    def spooled(mapper, parts):
        with __import__("tempfile").TemporaryDirectory() as spool:
            found = list(ndjson.spool(files, Path(spool), mapper, parts))
            return ([str(e) for e in found if isinstance(e, batch.InputError)],
                    [b"".join(p.read_bytes() for p in u.files) for u in found if isinstance(u, ndjson.Bucket)])

    one = spooled(map, 1)
    assert one[0] == [f"{export / 'Observation.ndjson'}:{bad_line}: not valid JSON (Expecting ',' delimiter: line 1 column 47 (char 46))"]
    with multiprocessing.get_context("fork").Pool(3) as pool:
        assert len(ndjson.segments(files, 3)) == 3
        assert spooled(pool.map, 3) == one


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuropathy_kg.cli", *args], capture_output=True)


def test_jobs_and_json_lines(population):
    folder, _patients = population
    one = _cli("validate", "--as-of", "2026-11-24", "--format", "json", "--jobs", "1", str(folder))
    two = _cli("validate", "--as-of", "2026-11-24", "--format", "json", "--jobs", "2", str(folder))
    assert one.returncode == two.returncode == 1
    assert one.stdout == two.stdout
    lines = _cli("validate", "--as-of", "2026-11-24", "--jsonl", "--jobs", "2", str(folder))
    assert lines.returncode == 1
    assert [json.loads(line) for line in lines.stdout.splitlines()] == json.loads(one.stdout)["patients"]
    assert b"Traceback" not in one.stderr + two.stderr + lines.stderr


@pytest.mark.bench
def test_fast_path_equals_the_reference_at_scale(tmp_path):
    """Run apart: NKG_BENCH_POPULATION=10000 pytest -m bench -n 0 tests/test_population.py (or
    bench/equivalence.py --size 10000, which prints progress)."""
    import os

    size = int(os.environ.get("NKG_BENCH_POPULATION", "10000"))
    folder = generate(size, tmp_path / "export", seed=size)
    summary = compare_export(folder, jobs=int(os.environ.get("NKG_BENCH_JOBS", "2")))
    assert summary["patients"] == size and summary["inputErrors"] == []
    assert summary["mismatches"] == []
    if size >= 10_000:  # the population is built to reach every rule at this size (bench/synthetic.py)
        assert summary["unexercised"] == [], "catalogue ids no patient exercised"
