"""OWL 2 DL reasoning (HermiT via owlready2): the ontology is consistent; a broken copy is not; the
reasoner's patient categories agree with the SPARQL derivation on every fixture patient; the reason
command's contract (exit statuses, missing Java, an inconsistent patient named)."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
import rdflib
from click.testing import CliRunner

from conftest import ROOT, expected, scenario_input, scenario_names
from neuropathy_kg import NKG, guideline, reasoning
from neuropathy_kg.cli import main
from neuropathy_kg.load import Patient, read_patients
from neuropathy_kg.engine import local_name
from neuropathy_kg.pipeline import derive

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Java is not installed; HermiT needs it")


def test_ontology_is_consistent_with_no_unsatisfiable_class():
    consistent, unsatisfiable, _ = reasoning.run_hermit(guideline.ontology())
    assert consistent and unsatisfiable == []


@pytest.mark.parametrize("breakage", [
    [(NKG.pregabalin, rdflib.RDF.type, NKG.NeuropathyPhenotype)],            # a drug that is also a phenotype
    [(NKG["repeat-ivig"], rdflib.RDF.type, NKG.Pitfall)],                    # an action that is also a pitfall
    [(NKG["renal-band-ge60"], NKG.bandCode, rdflib.Literal("60+"))],         # two codes for one band (functional)
])
def test_broken_ontology_is_inconsistent(breakage):
    broken = rdflib.Graph()
    broken += guideline.ontology()
    for triple in breakage:
        broken.add(triple)
    assert reasoning.run_hermit(broken)[0] is False


def _renamed(patient: Patient, scenario: str) -> Patient:
    """The patient with every scenario IRI made unique to its scenario, so all can share one graph."""
    base = "https://example.org/scenario/"
    fhir = "urn:neuropathy-kg:fhir:"  # FHIR scenarios: the reader's IRIs (Patient/p, Observation/o1) repeat across them
    def rename(term):
        if isinstance(term, rdflib.URIRef) and str(term).startswith(base):
            return rdflib.URIRef(f"{base}{scenario}/{str(term)[len(base):]}")
        if isinstance(term, rdflib.URIRef) and str(term).startswith(fhir):
            return rdflib.URIRef(f"{fhir}{scenario}/{str(term)[len(fhir):]}")
        return term
    graph = rdflib.Graph()
    for s, p, o in patient.graph:
        graph.add((rename(s), p, rename(o)))
    return Patient(iri=rename(patient.iri), id=f"{scenario}/{patient.id}", source=patient.source, graph=graph)


def test_reasoner_and_sparql_agree_on_every_fixture_patient():
    as_of = dt.date(2026, 11, 24)
    patients = []
    for name in scenario_names():
        assert expected(name)["asOf"] == as_of.isoformat()
        found, errors = read_patients([str(scenario_input(name))])
        assert not errors
        patients.extend(_renamed(p, name) for p in found)
    by_reasoner = {p["patient"]: set(p["categories"]) for p in reasoning.reason(patients, as_of)["patients"]}
    store = derive(patients, as_of)
    query = (ROOT / "queries" / "questions" / "patient-categories.rq").read_text()
    ids = {str(p.iri): p.id for p in patients}
    by_sparql = {p.id: set() for p in patients}
    for row in store.select(query):
        by_sparql[ids[str(row["patient"])]].add(local_name(row["category"]))
    assert by_reasoner == by_sparql
    assert sum(1 for c in by_reasoner.values() if "RepeatIvigCandidate" in c) >= 5
    assert any("RenalAdjustmentRequired" in c for c in by_reasoner.values())
    assert any("IvigNotIndicatedPatient" in c for c in by_reasoner.values())


def test_reason_command():
    result = CliRunner().invoke(main, ["reason", "--as-of", "2026-11-24", "--format", "json",
                                       str(ROOT / "examples" / "03-renal-impairment.ttl")])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["consistent"] is True and document["unsatisfiable"] == []
    assert "RenalAdjustmentRequired" in document["patients"][0]["categories"]
    ontology_only = CliRunner().invoke(main, ["reason", "--format", "json"])
    assert ontology_only.exit_code == 0 and json.loads(ontology_only.stdout)["patients"] == []


def test_inconsistent_patient_is_named(tmp_path):
    # Two sexes no longer make a patient inconsistent: 00-conflicting-patient-records.ru withdraws both
    # (data-conflicting-patient-records). Two deceased values still contradict the functional property.
    bad = tmp_path / "two-deceased-values.ttl"
    bad.write_text((ROOT / "examples" / "04-hepatic-disease.ttl").read_text().replace(
        'nkg:sex "male"', 'nkg:sex "male" ; nkg:deceased true , false'))
    result = CliRunner().invoke(main, ["reason", "--as-of", "2026-11-24", "--format", "json", str(bad),
                                       str(ROOT / "examples" / "01-responder-relapse.ttl")])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["consistent"] is False and document["inconsistentPatients"] == ["dmitri"]


def test_missing_java_is_one_line(monkeypatch):
    monkeypatch.setattr(reasoning.shutil, "which", lambda _name: None)
    result = CliRunner().invoke(main, ["reason"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "Java" in result.stderr and "Traceback" not in result.stderr
