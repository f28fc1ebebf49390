"""Population runs: the compiled shapes (set-based SPARQL over chunks of patients on Oxigraph) give
exactly pySHACL's findings, on every fixture and on a synthetic population; chunked derivation gives the
per-patient results; NDJSON bucketing, worker processes and JSON Lines change nothing but speed."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from conftest import ROOT, expected, scenario_input, scenario_names
from neuropathy_kg import batch, pipeline
from neuropathy_kg.load import read_patients

sys.path.insert(0, str(ROOT / "bench"))
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


def test_compiled_shapes_equal_pyshacl_on_a_synthetic_population(population):
    _folder, patients = population
    compiled = pipeline.validate(patients, AS_OF, "oxigraph", "compiled")
    reference = pipeline.validate(patients, AS_OF, "oxigraph", "pyshacl")
    assert compiled == reference
    found = {f["id"] for p in compiled["patients"] for f in p["findings"]}
    assert len(found) >= 12, "the population exercises most shapes"


def test_chunked_recommendations_equal_per_patient(population, monkeypatch):
    _folder, patients = population
    chunked = pipeline.recommend(patients, AS_OF, "oxigraph")
    monkeypatch.setitem(pipeline.CHUNK_SIZE, "oxigraph", 1)
    assert pipeline.recommend(patients, AS_OF, "oxigraph") == chunked
    assert sum(len(p["actions"]) for p in chunked["patients"]) > 300


def test_engines_agree_on_part_of_the_population(population):
    _folder, patients = population
    part = patients[:15]
    assert pipeline.recommend(part, AS_OF, "rdflib") == pipeline.recommend(part, AS_OF, "oxigraph")


def test_more_buckets_change_nothing(population, monkeypatch):
    folder, patients = population
    one = [p for b in batch.batches([str(folder)], 50) for p in b.patients]
    monkeypatch.setattr(batch, "BUCKET_BYTES", 20_000)
    many = [p for b in batch.batches([str(folder)], 50) for p in b.patients]
    assert sorted(p.id for p in one) == sorted(p.id for p in many) == sorted(p.id for p in patients)
    by_id = {p.id: len(p.graph) for p in one}
    assert {p.id: len(p.graph) for p in many} == by_id


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
def test_compiled_shapes_equal_pyshacl_at_scale(tmp_path):
    """Run apart: NKG_BENCH_POPULATION=10000 pytest -m bench tests/test_population.py."""
    import os

    size = int(os.environ.get("NKG_BENCH_POPULATION", "10000"))
    folder = generate(size, tmp_path / "export", seed=size)
    patients = [p for b in batch.batches([str(folder)], 200) for p in b.patients]
    assert len(patients) == size
    mismatched = []
    for start in range(0, size, 200):
        chunk = patients[start:start + 200]
        compiled = pipeline.validate(chunk, AS_OF, "oxigraph", "compiled")
        reference = pipeline.validate(chunk, AS_OF, "oxigraph", "pyshacl")
        mismatched += [c["patient"] for c, r in zip(compiled["patients"], reference["patients"]) if c != r]
    assert mismatched == []
