"""Issue 7, the FHIR Clinical Practice Guidelines export: the Bundle parses as FHIR R4B, carries every
catalogue action with its citations, resolves every canonical reference inside itself, and states the
doses the ontology states (IVIG by weight, titration steps, renal-band maxima)."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from test_cli import invoke
from neuropathy_kg import NKG, guideline
from neuropathy_kg.cpg import CPG_ACTIVITY, PROJECT_CODES, export_bundle


@pytest.fixture(scope="module")
def bundle() -> dict:
    return export_bundle()


def resources(bundle: dict, kind: str) -> dict[str, dict]:
    return {e["resource"]["url"]: e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind}


def walk(actions: list[dict]):
    for action in actions:
        yield action
        yield from walk(action.get("action", []))


def test_the_bundle_is_valid_fhir_r4b_and_byte_stable(bundle):
    Bundle.model_validate(bundle)
    assert json.dumps(export_bundle()) == json.dumps(bundle)


def test_every_catalogue_action_is_in_the_plan_with_its_citations(bundle):
    plan = resources(bundle, "PlanDefinition")[str(NKG.guideline)]
    by_code = {}
    for action in plan["action"]:
        codes = {c["system"]: c["code"] for concept in action["code"] for c in concept["coding"]}
        by_code[codes[PROJECT_CODES]] = action
        assert CPG_ACTIVITY in codes, f"{action['id']} has a CPG activity type"
    actions = {e.id: e for e in guideline.catalogue().values() if e.kind == "RecommendedAction"}
    assert set(by_code) == set(actions) and len(actions) == 27  # 24 of the first edition + reduce-to-renal-dose, titrate-gabapentin, titrate-duloxetine-to-60
    for action_id, entry in actions.items():
        assert [d["label"] for d in by_code[action_id]["documentation"]] == list(entry.citations)
        assert by_code[action_id]["condition"][0]["expression"]["language"] == "application/sparql-query"


def test_every_reference_resolves_inside_the_bundle(bundle):
    canonical = {e["resource"]["url"] for e in bundle["entry"]}
    plan = resources(bundle, "PlanDefinition")[str(NKG.guideline)]
    for action in walk(plan["action"]):
        for artifact in action.get("documentation", []):
            assert artifact["resource"] in resources(bundle, "Citation")
        if "definitionCanonical" in action:
            assert action["definitionCanonical"] in resources(bundle, "ActivityDefinition")
        for related in action.get("relatedAction", []):
            assert related["actionId"] in {a["id"] for a in walk(plan["action"])}
    for activity in resources(bundle, "ActivityDefinition").values():
        assert all(a["resource"] in canonical for a in activity.get("relatedArtifact", []))


def test_doses_are_the_ontologys(bundle):
    activities = resources(bundle, "ActivityDefinition")
    ivig = activities[str(NKG["dose-ivig"])]["dosage"][0]
    assert ivig["doseAndRate"][0]["doseQuantity"]["value"] == 0.4 and ivig["doseAndRate"][0]["doseQuantity"]["code"] == "g/kg"
    assert ivig["timing"]["repeat"]["boundsDuration"]["value"] == 5
    steroid = activities[str(NKG["dose-methylprednisolone"])]["dosage"][0]["doseAndRate"][0]["doseRange"]
    assert (steroid["low"]["value"], steroid["high"]["value"], steroid["low"]["code"]) == (2, 4, "mg/kg")
    pregabalin = activities[str(NKG["dose-pregabalin-renal-ge60"])]["dosage"]
    assert [d["doseAndRate"][0]["doseQuantity"]["value"] for d in pregabalin] == [50, 100], "50 mg then 100 mg, three times a day"
    assert pregabalin[0]["maxDosePerPeriod"]["numerator"]["value"] == 600
    assert activities[str(NKG["dose-gabapentin-renal-30-59"])]["dosage"][0]["maxDosePerPeriod"]["numerator"]["value"] == 1400


def test_renal_bands_choose_exactly_one_regimen_and_checks_follow_the_course(bundle):
    plan = resources(bundle, "PlanDefinition")[str(NKG.guideline)]
    actions = {a["id"]: a for a in plan["action"]}
    start = actions["start-pregabalin"]
    assert start["selectionBehavior"] == "exactly-one" and len(start["action"]) == 4
    assert {a["definitionCanonical"].rsplit("/", 1)[-1] for a in start["action"]} == {
        "dose-pregabalin-renal-ge60", "dose-pregabalin-renal-30-59", "dose-pregabalin-renal-15-29", "dose-pregabalin-renal-lt15"}
    assert actions["repeat-ivig"]["definitionCanonical"] == str(NKG["dose-ivig"])
    reassess = actions["reassess-pain-2-weeks"]["relatedAction"][0]
    assert (reassess["actionId"], reassess["relationship"], reassess["offsetDuration"]["value"]) == ("repeat-ivig", "after-end", 14)
    assert actions["monitor-ivig-adverse-effects"]["relatedAction"][0]["relationship"] == "concurrent"


def test_value_sets_and_citations(bundle):
    value_sets = resources(bundle, "ValueSet")
    pregabalin = value_sets[str(NKG.pregabalin)]["compose"]["include"]
    assert {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "concept": [{"code": "187832"}]} in pregabalin
    citations = resources(bundle, "Citation")
    assert {c["identifier"][0]["value"] for c in citations.values()} >= {str(n) for n in range(1, 10)} | {"USPI-pregabalin"}
    assert citations[str(NKG["ref-2"])]["classification"][0]["classifier"][0]["coding"][0]["code"] == "ECO:0006017"


def test_export_command_writes_the_bundle(tmp_path):
    target = tmp_path / "cpg.json"
    result = invoke("export", "fhir-cpg", "--output", str(target))
    assert result.exit_code == 0, result.stderr
    Bundle.model_validate(json.loads(target.read_text()))
