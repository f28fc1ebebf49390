"""Patient scenarios (tests/scenarios/<name>/): each patient's exact actions, findings and missing data,
plus doses, due dates and derived facts where the expected file names them; on rdflib and Oxigraph."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import ENGINES, expected, run, scenario_names


def _by_patient(document: dict) -> dict[str, dict]:
    return {p["patient"]: p for p in document["patients"]}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", scenario_names())
def test_scenario(name: str, engine: str) -> None:
    spec = expected(name)
    recommendation, validation = run(name, engine)
    recommended = _by_patient(recommendation)
    validated = _by_patient(validation)
    assert set(recommended) == set(spec["patients"]), "every patient read appears once"
    for pid, want in spec["patients"].items():
        got = recommended[pid]
        # an action over several drugs is derived once per drug (reduce-to-renal-dose): expected twice, its
        # details named "<id>/<drug>"
        assert sorted(a["id"] for a in got["actions"]) == sorted(want["actions"]), f"{pid}: actions"
        actions = {a["id"]: a for a in got["actions"]}
        actions.update({f"{a['id']}/{a['dose']['drug']}": a for a in got["actions"] if "dose" in a})
        findings = {f"{f['id']}:{f['severity']}" for f in validated[pid]["findings"]}
        assert findings == set(want["findings"]), f"{pid}: findings"
        assert validated[pid]["conforms"] == (not any(f.endswith(":violation") for f in want["findings"]))
        missing = {m["id"]: m["neededFor"] for m in got["missingData"]}
        assert missing == want.get("missingData", {}), f"{pid}: missingData"
        if "phenotype" in want:
            assert got["phenotype"] == want["phenotype"]
        if "inScope" in want:
            assert got["inScope"] == want["inScope"]
        for key, value in want.get("facts", {}).items():
            assert got["facts"][key] == value, f"{pid}: fact {key}"
        for action_id, fields in want.get("details", {}).items():
            for key, value in fields.items():
                assert actions[action_id].get(key) == value, f"{pid}: {action_id}.{key}"
        for action_id, keys in want.get("absent", {}).items():
            for key in keys:
                assert key not in actions[action_id], f"{pid}: {action_id} must not carry {key}"
        counts = Counter(f["id"] for f in validated[pid]["findings"])
        for finding_id, count in want.get("findingCount", {}).items():
            assert counts[finding_id] == count


@pytest.mark.parametrize("name", scenario_names())
def test_engines_agree(name: str) -> None:
    """The same queries and shapes give the same JSON on rdflib and on Oxigraph."""
    assert run(name, "rdflib") == run(name, "oxigraph")


@pytest.mark.parametrize("name", scenario_names())
def test_every_action_and_finding_is_cited(name: str) -> None:
    recommendation, validation = run(name, "oxigraph")
    for patient in recommendation["patients"]:
        for action in patient["actions"]:
            assert action["citations"] and action["rationale"] and action["statement"], action["id"]
            assert "not recorded" not in action["rationale"] or action["id"] in ALLOWED_UNRECORDED, action
    for patient in validation["patients"]:
        for finding in patient["findings"]:
            if not finding["id"].startswith("data-"):
                assert finding["citations"], finding


# Rationales that name a datum which may legitimately be absent (the latest measurement to show, a date).
ALLOWED_UNRECORDED = {
    "document-baseline-measures", "monitor-fasting-glucose-daily", "monitor-hba1c-every-3-months",
    "optimize-glycemic-control", "annual-monofilament-test", "reassess-pain-2-weeks", "reassess-pain-1-month",
    "assess-motor-function-1-month", "start-pregabalin", "start-gabapentin", "start-duloxetine", "repeat-ivig",
    "neurologic-exam-for-symmetric-progression", "monitor-ivig-adverse-effects", "consider-plasma-exchange",
    "titrate-pregabalin", "lidocaine-patch", "consider-corticosteroids", "titrate-gabapentin", "titrate-duloxetine-to-60",
}


def test_every_action_and_pitfall_is_fired_and_kept_silent_by_the_scenarios() -> None:
    from neuropathy_kg import guideline

    fired: dict[str, set[str]] = {}
    silent: dict[str, set[str]] = {}
    catalogue = {e.id for e in guideline.catalogue().values() if e.kind in ("RecommendedAction", "Pitfall")}
    for name in scenario_names():
        for patient in expected(name)["patients"].values():
            present = set(patient["actions"]) | {f.split(":")[0] for f in patient["findings"]}
            for ident in catalogue:
                (fired if ident in present else silent).setdefault(ident, set()).add(name)
    assert sorted(catalogue - set(fired)) == [], "never fired by a scenario"
    assert sorted(catalogue - set(silent)) == [], "never kept silent by a scenario"
