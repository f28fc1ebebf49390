"""Shared test helpers: scenario discovery and cached runs of the pipeline per (scenario, engine)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from functools import lru_cache
from pathlib import Path

import pytest

from neuropathy_kg.load import read_patients
from neuropathy_kg.pipeline import assess

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "scenarios"
ENGINES = ("oxigraph", "rdflib")

logging.getLogger("rdflib").setLevel(logging.CRITICAL)


def scenario_names() -> list[str]:
    return sorted(p.name for p in SCENARIOS.iterdir() if (p / "expected.json").is_file())


def expected(name: str) -> dict:
    return json.loads((SCENARIOS / name / "expected.json").read_text())


def scenario_input(name: str) -> Path:
    return (SCENARIOS / name / expected(name).get("input", "patient.ttl")).resolve()


@lru_cache(maxsize=None)
def run(name: str, engine: str) -> tuple[dict, dict]:
    """(recommend JSON, validate JSON) for one scenario on one engine."""
    spec = expected(name)
    as_of = dt.date.fromisoformat(spec["asOf"])
    patients, errors = read_patients([str(scenario_input(name))])
    assert not errors, errors
    return assess(patients, as_of, engine)


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


def sparql_json_rows(text: str) -> list[dict[str, str]]:
    """The bindings of a SPARQL 1.1 Query Results JSON document, each value by its lexical form."""
    document = json.loads(text)
    assert set(document) == {"head", "results"} and isinstance(document["head"]["vars"], list)
    return [{name: term["value"] for name, term in binding.items()} for binding in document["results"]["bindings"]]
