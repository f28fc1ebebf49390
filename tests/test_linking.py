"""Issue 7, cross-guideline interactions: this guideline loaded beside a second guideline graph
(tests/guidelines/chronic-pain-fragment.ttl) gives exactly the seeded contradictions, repetitions,
alternatives and drug-drug interactions, each with both sides' citations, on both engines."""

from __future__ import annotations

import json

import pytest

from conftest import ENGINES, ROOT
from test_cli import invoke, one_line_error
from neuropathy_kg.linking import interactions, read_guideline_graph

OTHER = ROOT / "tests" / "guidelines" / "chronic-pain-fragment.ttl"
CP = "https://example.org/chronic-pain/"
TRAMADOL, SNRI, AMITRIPTYLINE = CP + "rec-immediate-release-opioid", CP + "rec-snri-depression-pain", CP + "rec-amitriptyline"

EXPECTED = {
    ("contradiction", "opioid-as-first-line", TRAMADOL, "tramadol", None),
    ("contradiction", "duloxetine-in-hepatic-disease", SNRI, "duloxetine", None),
    ("repetition", "start-duloxetine", SNRI, "duloxetine", None),
    ("repetition", "titrate-duloxetine", SNRI, "duloxetine", None),
    ("repetition", "combination-therapy", SNRI, "duloxetine", None),
    ("repetition", "combination-therapy", AMITRIPTYLINE, "amitriptyline", None),
    *{("alternative", ours, AMITRIPTYLINE, drug, "amitriptyline")
      for ours, drug in [("start-pregabalin", "pregabalin"), ("titrate-pregabalin", "pregabalin"), ("start-gabapentin", "gabapentin"),
                         ("start-duloxetine", "duloxetine"), ("titrate-duloxetine", "duloxetine")]},
    *{("alternative", ours, SNRI, drug, "duloxetine")
      for ours, drug in [("start-pregabalin", "pregabalin"), ("titrate-pregabalin", "pregabalin"), ("start-gabapentin", "gabapentin")]},
    *{("drug-interaction", ours, TRAMADOL, "duloxetine", "tramadol") for ours in ("start-duloxetine", "titrate-duloxetine", "combination-therapy")},
    *{("drug-interaction", ours, AMITRIPTYLINE, "duloxetine", "amitriptyline") for ours in ("start-duloxetine", "titrate-duloxetine", "combination-therapy")},
    ("drug-interaction", "combination-therapy", SNRI, "amitriptyline", "duloxetine"),
    ("drug-interaction", "combination-therapy", SNRI, "nortriptyline", "duloxetine"),
}


@pytest.mark.parametrize("engine", ENGINES)
def test_the_seeded_interactions_and_nothing_else(engine):
    document = interactions([read_guideline_graph(str(OTHER))], engine)
    found = {(f["kind"], f["ours"]["id"], f["theirs"]["iri"], f["drug"], f.get("theirDrug")) for f in document["interactions"]}
    assert found == EXPECTED
    assert not any("benzodiazepine" in f["theirs"]["label"].lower() for f in document["interactions"])


def test_both_sides_are_cited():
    document = interactions([read_guideline_graph(str(OTHER))])
    for finding in document["interactions"]:
        assert finding["ours"]["citations"] and finding["theirs"]["citations"], finding
    opioid = next(f for f in document["interactions"] if f["ours"]["id"] == "opioid-as-first-line")
    assert opioid["ours"]["citations"] == ["1", "8"] and opioid["ours"]["stance"] == "avoid"
    assert opioid["theirs"]["citations"] == ["CDC-2022"]
    serotonin = next(f for f in document["interactions"] if f["kind"] == "drug-interaction" and f["theirDrug"] == "tramadol")
    assert serotonin["interaction"] == {"id": "interaction-duloxetine-tramadol", "effect": "serotonin syndrome",
                                        "citations": ["USPI-duloxetine"]}


def test_a_guideline_that_meets_nothing_gives_no_interaction(tmp_path):
    unrelated = tmp_path / "unrelated.ttl"
    unrelated.write_text("@prefix nkg: <https://w3id.org/neuropathy-kg/> .\n"
                         "<https://example.org/x/rec> <http://www.w3.org/2000/01/rdf-schema#label> \"Offer ibuprofen\" ;\n"
                         "  nkg:recommendsUse <http://purl.bioontology.org/ontology/RXNORM/5640> .\n")
    assert interactions([read_guideline_graph(str(unrelated))])["interactions"] == []


def test_interactions_command(tmp_path):
    result = invoke("interactions", "--format", "json", str(OTHER))
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["interactions"]) == len(EXPECTED)
    text = invoke("interactions", "--format", "text", str(OTHER)).stdout
    assert "contradiction" in text and "serotonin syndrome" in text
    empty = tmp_path / "empty.ttl"
    empty.write_text("@prefix ex: <https://example.org/> . ex:a ex:b ex:c .")
    one_line_error(invoke("interactions", str(empty)), "empty.ttl", "no recommendation")
    one_line_error(invoke("interactions", str(tmp_path / "missing.ttl")), "missing.ttl", "cannot read")
