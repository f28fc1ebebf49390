"""Issue 17, `recommend --format fhir` and `validate --format fhir`: what CPG $apply returns for each
scenario patient, every resource checked against its FHIR R4B model and every reference resolved inside
its Bundle; doses as the pipeline computed them, split by the ActivityDefinition's times a day, with the
renal band's maximum; drafts without dose where data is missing; findings as DetectedIssues and
OperationOutcomes."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import expected, run, scenario_input, scenario_names
from test_cli import invoke
from neuropathy_kg import apply, guideline
from neuropathy_kg.apply import MISSING_DATA, RATIONALE, recommend_bundle, validate_bundle
from neuropathy_kg.cpg import CPG_ACTIVITY, PROJECT_CODES

REQUEST_KINDS = {"MedicationRequest", "ServiceRequest", "Task", "CommunicationRequest"}


def references(value):
    """Every literal reference string in a resource."""
    if isinstance(value, dict):
        # a resource's own "reference" (DetectedIssue.reference, a uri) is not a Reference
        if isinstance(value.get("reference"), str) and "resourceType" not in value:
            yield value["reference"]
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def assert_closed(bundle: dict) -> None:
    """The Bundle passes its R4B model (every resource with it) and each reference names a fullUrl in it,
    but a priorPrescription, which names the patient's own order (assert_own_order)."""
    Bundle.model_validate(bundle)
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls)), "fullUrls are unique"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        apply.check(resource)
        prior = resource.get("priorPrescription")
        if prior is not None:
            assert_own_order(bundle, resource, prior)
        for reference in references({k: v for k, v in resource.items() if k != "priorPrescription"}):
            assert reference in urls, f"{resource['resourceType']}: {reference} does not resolve"


def assert_own_order(bundle: dict, request: dict, prior: dict) -> None:
    """A priorPrescription names a record of the request's own patient by its IRI (the FHIR reader's
    records: urn:neuropathy-kg:fhir:Patient/<id>/MedicationRequest/<id>), and for a record read from FHIR,
    literally, the same MedicationRequest where it was read from."""
    patient = by_url(bundle)[request["subject"]["reference"]]
    (pid,) = [i["value"] for i in patient["identifier"] if i["system"] == apply.PATIENT_ID_SYSTEM]
    iri = prior["identifier"]["value"]
    assert prior["identifier"]["system"] == apply.RECORD_SYSTEM
    if iri.startswith("urn:neuropathy-kg:fhir:"):
        assert iri.startswith(f"urn:neuropathy-kg:fhir:Patient/{pid}/MedicationRequest/"), (iri, pid)
        assert prior["reference"] == "MedicationRequest/" + iri.rsplit("/", 1)[-1]
    else:
        assert "reference" not in prior


def by_url(bundle: dict) -> dict[str, dict]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def groups(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RequestGroup"]


def patient_of(bundle: dict, group: dict) -> dict:
    return by_url(bundle)[group["subject"]["reference"]]


@pytest.mark.parametrize("name", scenario_names())
def test_every_scenario_is_a_closed_valid_bundle_with_one_action_per_derived_action(name):
    recommendation, validation = run(name, "oxigraph")
    bundle = recommend_bundle(recommendation)
    assert_closed(bundle)
    assert_closed(validate_bundle(validation))
    plan = apply.plan()
    resources = by_url(bundle)
    spec = expected(name)["patients"]
    assert len(groups(bundle)) == len(spec)
    for group in groups(bundle):
        pid = patient_of(bundle, group)["identifier"][0]["value"]
        assert group["status"] == "active" and group["intent"] == "proposal"
        assert group["instantiatesCanonical"] == [plan.canonical]
        ids = [a["id"] for a in group.get("action", [])]
        assert sorted(ids) == sorted(set(spec[pid]["actions"])), "one group action per catalogue action"
        orders = [guideline.catalogue()[i].order for i in ids]
        assert orders == sorted(orders), "catalogue order"
        derived = next(p["actions"] for p in recommendation["patients"] if p["patient"] == pid)
        leaves = {leaf["resource"]["reference"]: leaf for leaf in apply.leaf_actions(group)}
        assert len(leaves) == len(derived) == len(spec[pid]["actions"]), "a request per derived action (per drug)"
        for action in group.get("action", []):
            subs = action.get("action") or [action]
            assert len(subs) == sum(a["id"] == action["id"] for a in derived)
            if len(subs) > 1:  # an action of several drugs: all of its drugs' requests apply
                assert action["selectionBehavior"] == "all" and "resource" not in action
                assert len({sub["id"] for sub in subs}) == len(subs)
            for sub in subs:
                request = resources[sub["resource"]["reference"]]
                kind = apply.REQUEST_KIND[plan.activity_type(action["id"])]
                assert request["resourceType"] == kind
                assert request["intent"] == "option"
                assert (request.get("subject") or request.get("for")) == group["subject"]
                (mine,) = [a for a in derived if f"urn:uuid:{apply.request_id(a, {'patient': pid, 'actions': derived}, recommendation['asOf'])}" == sub["resource"]["reference"]]
                assert mine["id"] == action["id"]
                assert request["extension"][0] == {"url": RATIONALE, "valueMarkdown": mine["rationale"]}
                assert sub.get("textEquivalent") == mine["rationale"]
            cited = {d["resource"] for d in action["documentation"]}
            assert cited and cited <= set(plan.citations), "documentation cites the export's Citation resources"
            for related in action.get("relatedAction", []):
                assert related["actionId"] in ids


def _requests(name: str, pid: str) -> dict[str, dict]:
    recommendation, _ = run(name, "oxigraph")
    bundle = recommend_bundle(recommendation)
    resources = by_url(bundle)
    group = next(g for g in groups(bundle) if patient_of(bundle, g)["identifier"][0]["value"] == pid)
    return {a["id"]: (a, resources[a["resource"]["reference"]]) for a in group["action"]}


def test_ivig_is_grams_a_day_for_five_days_with_due_dates_and_relations():
    requests = _requests("example-03-renal-impairment", "carmen")
    _action, ivig = requests["repeat-ivig"]
    assert ivig["status"] == "active" and ivig["instantiatesCanonical"] == ["https://w3id.org/neuropathy-kg/dose-ivig"]
    (dosage,) = ivig["dosageInstruction"]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {"value": 30, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}
    assert dosage["timing"]["repeat"]["boundsDuration"]["value"] == 5
    assert dosage["timing"]["repeat"]["frequency"] == 1
    assert "total 150 g" in dosage["text"]
    reassess, task = requests["reassess-pain-2-weeks"]
    assert reassess["timingDateTime"] == "2026-12-18"
    assert task["resourceType"] == "Task" and task["restriction"]["period"]["start"] == "2026-12-18"
    assert {"system": CPG_ACTIVITY, "code": "collect-information"} in task["code"]["coding"]
    assert any(r["actionId"] == "repeat-ivig" and r["relationship"] == "after-end" for r in reassess["relatedAction"])
    _exam, service = requests["neurologic-exam-for-symmetric-progression"]
    assert service["resourceType"] == "ServiceRequest"


def test_titration_is_split_by_times_a_day_with_the_bands_maximum():
    requests = _requests("example-01-responder-relapse", "alice")
    _action, pregabalin = requests["start-pregabalin"]
    assert pregabalin["instantiatesCanonical"] == ["https://w3id.org/neuropathy-kg/dose-pregabalin-renal-ge60"]
    start, target = pregabalin["dosageInstruction"]
    assert (start["sequence"], target["sequence"]) == (1, 2)
    assert start["timing"]["repeat"]["frequency"] == 3
    assert start["doseAndRate"][0]["doseQuantity"]["value"] == 50  # 150 mg/day in three doses
    assert target["doseAndRate"][0]["doseQuantity"]["value"] == 100  # 300 mg/day
    assert start["maxDosePerPeriod"]["numerator"]["value"] == 600
    assert start["maxDosePerPeriod"]["denominator"] == {"value": 1, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}


@pytest.mark.parametrize("name", scenario_names())
def test_every_dose_is_the_pipelines_and_every_band_the_patients(name):
    """Per administration x times a day = the computed daily dose; the maximum is the computed one; a
    banded drug instantiates the ActivityDefinition of the patient's own band."""
    recommendation, _ = run(name, "oxigraph")
    bundle = recommend_bundle(recommendation)
    resources = by_url(bundle)
    plan = apply.plan()
    for result in recommendation["patients"]:
        group = next(g for g in groups(bundle) if patient_of(bundle, g)["identifier"][0]["value"] == result["patient"])
        leaves = apply.leaf_actions(group)
        assert len(leaves) == len(result["actions"])
        for action, planned in zip(sorted(result["actions"], key=lambda a: guideline.catalogue()[a["id"]].order), leaves):
            assert planned["resource"]["reference"] == f"urn:uuid:{apply.request_id(action, result, recommendation['asOf'])}"
            request = resources[planned["resource"]["reference"]]
            if request["resourceType"] != "MedicationRequest":
                continue
            for url in request.get("instantiatesCanonical", []):
                if url in plan.band_of:
                    assert plan.band_of[url] == result["facts"]["renalBand"]
            dose = action.get("dose")
            if request["status"] == "draft":
                assert "dosageInstruction" not in request
                continue
            if dose:  # every dosed drug instantiates its dose specification: its schedule, not a once-daily default
                assert request.get("instantiatesCanonical"), (name, action["id"])
                activity = plan.activities[request["instantiatesCanonical"][0]]
                assert plan.drug_of[activity["url"]] == dose["drug"]
                spec_times = activity["dosage"][0]["timing"]["repeat"]["frequency"]
                assert all(d["timing"]["repeat"]["frequency"] == spec_times for d in request["dosageInstruction"])
            daily = [dose[k] for k in ("dailyAmount", "startDailyAmount", "targetDailyAmount") if dose and k in dose]
            for dosage, amount in zip(request.get("dosageInstruction", []), daily):
                times = dosage["timing"]["repeat"]["frequency"]
                assert dosage["doseAndRate"][0]["doseQuantity"]["value"] * times == pytest.approx(amount)
                assert dosage["doseAndRate"][0]["doseQuantity"]["unit"] == dose["unit"]
                if "maxDailyAmount" in dose:
                    assert dosage["maxDosePerPeriod"]["numerator"]["value"] == dose["maxDailyAmount"]
                activity = plan.activities.get((request.get("instantiatesCanonical") or [None])[0], {})
                for template in activity.get("dosage", []):
                    if "maxDosePerPeriod" in template:  # the computed maximum is the band's own
                        assert dosage["maxDosePerPeriod"] == template["maxDosePerPeriod"]


def test_missing_data_makes_a_draft_without_dose_naming_the_datum():
    requests = _requests("example-06-missing-data", "farid")
    _action, ivig = requests["repeat-ivig"]
    assert ivig["status"] == "draft" and "dosageInstruction" not in ivig
    assert {"url": MISSING_DATA, "valueCoding": {"system": PROJECT_CODES, "code": "data-missing-body-weight",
                                                 "display": guideline.catalogue()["data-missing-body-weight"].label}} in ivig["extension"]
    assert any("data-missing-body-weight" in note["text"] for note in ivig["note"])
    # A dose computed without renal function is not proposed: duloxetine needs it (missingData says so).
    _action, duloxetine = requests["start-duloxetine"]
    assert duloxetine["status"] == "draft" and "dosageInstruction" not in duloxetine
    # pregabalin without a renal band: no band's ActivityDefinition is chosen
    _action, pregabalin = requests["start-pregabalin"]
    assert pregabalin["status"] == "draft" and "instantiatesCanonical" not in pregabalin


def test_the_patient_is_in_the_bundle_and_patients_do_not_mix():
    recommendation, _ = run("example-07-out-of-scope-and-deceased", "oxigraph")
    first, _ = run("example-01-responder-relapse", "oxigraph")
    document = {**recommendation, "patients": recommendation["patients"] + first["patients"]}
    bundle = recommend_bundle(document)
    assert_closed(bundle)
    resources = by_url(bundle)
    patients = [r for r in resources.values() if r["resourceType"] == "Patient"]
    assert sorted(p["id"] for p in patients) == ["alice", "gita", "hamid"]
    for group in groups(bundle):
        for action in group.get("action", []):
            request = resources[action["resource"]["reference"]]
            assert (request.get("subject") or request.get("for")) == group["subject"]
    out_of_scope = [g for g in groups(bundle) if not g.get("action")]
    assert out_of_scope and all(g.get("note") for g in out_of_scope)


def test_the_bundle_is_stable_for_the_same_input():
    recommendation, _ = run("example-01-responder-relapse", "oxigraph")
    assert json.dumps(recommend_bundle(recommendation)) == json.dumps(recommend_bundle(json.loads(json.dumps(recommendation))))


def test_patient_ids_fhir_does_not_allow_become_uuids_with_the_id_kept():
    _url, patient = apply.patient_resource("has space/and slash", "2026-11-24")
    assert " " not in patient["id"] and patient["identifier"][0]["value"] == "has space/and slash"
    apply.check(patient)


@pytest.mark.parametrize("name", scenario_names())
def test_findings_are_detected_issues_and_operation_outcomes(name):
    _, validation = run(name, "oxigraph")
    bundle = validate_bundle(validation)
    assert_closed(bundle)
    catalogue = guideline.catalogue()
    for result in validation["patients"]:
        pitfalls = [f for f in result["findings"] if catalogue[f["id"]].kind == "Pitfall"]
        data = [f for f in result["findings"] if catalogue[f["id"]].kind != "Pitfall"]
        patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
                       and e["resource"]["identifier"][0]["value"] == result["patient"])
        mine = [e["resource"] for e in bundle["entry"] if (e["resource"].get("patient") or {}).get("reference") == patient["fullUrl"]]
        issues = sorted((i["code"]["coding"][0]["code"], i["severity"], i["detail"]) for i in mine)
        assert issues == sorted((f["id"], apply.ISSUE_SEVERITY[f["severity"]], f["message"]) for f in pitfalls)
        for issue in mine:
            assert issue["code"]["coding"][0]["system"] == PROJECT_CODES and issue["implicated"]
    outcomes = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "OperationOutcome"]
    assert len(outcomes) == len(validation["patients"])
    found = sorted(i["details"]["coding"][0]["code"] for o in outcomes for i in o["issue"] if "coding" in i.get("details", {}))
    assert found == sorted(f["id"] for r in validation["patients"] for f in r["findings"] if catalogue[f["id"]].kind != "Pitfall")


def test_cli_recommend_and_validate_format_fhir(tmp_path):
    source = str(scenario_input("example-03-renal-impairment"))
    whole = invoke("recommend", "--as-of", "2026-11-24", "--format", "fhir", source)
    assert whole.exit_code == 0
    assert_closed(json.loads(whole.stdout))
    lines = invoke("recommend", "--as-of", "2026-11-24", "--format", "fhir", "--jsonl", str(scenario_input("example-07-out-of-scope-and-deceased")))
    assert lines.exit_code == 0
    bundles = [json.loads(line) for line in lines.stdout.splitlines()]
    assert len(bundles) == 2
    for bundle in bundles:
        assert_closed(bundle)
        assert len(groups(bundle)) == 1
    checked = invoke("validate", "--as-of", "2026-11-24", "--format", "fhir", source)
    assert checked.exit_code == 1, "a violation keeps validate's exit status"
    assert_closed(json.loads(checked.stdout))
    per_line = invoke("validate", "--as-of", "2026-11-24", "--format", "fhir", "--jsonl", source)
    assert per_line.exit_code == 1
    assert_closed(json.loads(per_line.stdout.splitlines()[0]))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(apply.plan().activities)), st.integers(1, 4000), st.integers(1, 4000), st.integers(1, 4000))
def test_dosage_splits_exactly_whatever_the_amounts(url, start, target, maximum):
    activity = apply.plan().activities[url]
    dose = {"drug": "x", "unit": "mg", "startDailyAmount": start, "targetDailyAmount": target, "maxDailyAmount": maximum}
    dosages = apply.dosages(dose, activity)
    times = (activity["dosage"][0]["timing"]["repeat"]["frequency"])
    want = [start] if start == target else [start, target]
    assert [d["doseAndRate"][0]["doseQuantity"]["value"] * times for d in dosages] == pytest.approx(want)
    assert all(d["maxDosePerPeriod"]["numerator"]["value"] == maximum for d in dosages)


# ---------------------------------------------------------------- a dose change names the order it replaces

def _carmen_bundle_file(tmp_path, extra: list[dict] = ()) -> str:
    from service_client import scenario_resources

    resources = scenario_resources("example-03-renal-impairment")["carmen"] + list(extra)
    path = tmp_path / "carmen.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}))
    return str(path)


def _medication_requests(bundle: dict, drug: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"
            and drug in json.dumps(e["resource"].get("medicationCodeableConcept")).lower()]


@pytest.mark.parametrize("jsonl", [False, True])
def test_cli_recommend_format_fhir_names_the_order_a_dose_change_replaces(tmp_path, jsonl):
    """review2 entry 13, on the command line: carmen (CrCl 25) is on pregabalin 300 mg/day (her active
    order carmen-6); the proposed 75 mg/day replaces it, so that a client applying the Bundle stops it."""
    args = ["recommend", "--as-of", "2026-11-24", "--format", "fhir"] + (["--jsonl"] if jsonl else [])
    result = invoke(*args, _carmen_bundle_file(tmp_path))
    assert result.exit_code == 0, result.stderr
    bundle = json.loads(result.stdout.splitlines()[0] if jsonl else result.stdout)
    assert_closed(bundle)
    (proposed,) = _medication_requests(bundle, "pregabalin")
    prior = proposed["priorPrescription"]
    assert prior["reference"] == "MedicationRequest/carmen-6"
    assert prior["identifier"] == {"system": apply.RECORD_SYSTEM, "value": "urn:neuropathy-kg:fhir:Patient/carmen/MedicationRequest/carmen-6"}
    assert any(n["text"].startswith(apply.REPLACES_NOTE) and "carmen-6" in n["text"] for n in proposed["note"])
    assert [d["doseAndRate"][0]["doseQuantity"]["value"] * d["timing"]["repeat"]["frequency"] for d in proposed["dosageInstruction"]] == [75]
    for other in _medication_requests(bundle, "immune") + _medication_requests(bundle, "ivig"):
        assert "priorPrescription" not in other, "IVIG replaces no order"


def test_library_recommend_format_fhir_names_the_order_too(tmp_path):
    import neuropathy_kg

    bundle = neuropathy_kg.recommend([_carmen_bundle_file(tmp_path)], as_of="2026-11-24", format="fhir")
    (proposed,) = _medication_requests(bundle, "pregabalin")
    assert proposed["priorPrescription"]["reference"] == "MedicationRequest/carmen-6"


def test_two_orders_in_effect_are_both_named_and_no_single_prior_prescription_is_guessed(tmp_path):
    """Two active pregabalin orders: priorPrescription holds one, so none is picked; the note names both."""
    from service_client import scenario_resources

    order = next(r for r in scenario_resources("example-03-renal-impairment")["carmen"]
                 if r["resourceType"] == "MedicationRequest" and r.get("status") == "active" and "pregabalin" in json.dumps(r).lower())
    second = {**order, "id": "carmen-6b"}
    result = invoke("recommend", "--as-of", "2026-11-24", "--format", "fhir", _carmen_bundle_file(tmp_path, [second]))
    assert result.exit_code == 0, result.stderr
    bundle = json.loads(result.stdout)
    assert_closed(bundle)
    for proposed in _medication_requests(bundle, "pregabalin"):
        assert "priorPrescription" not in proposed
        (note,) = [n["text"] for n in proposed["note"] if n["text"].startswith(apply.REPLACES_NOTE)]
        assert "MedicationRequest/carmen-6," in note and "MedicationRequest/carmen-6b" in note


def test_a_stopped_order_is_not_replaced(tmp_path):
    """Only an order in effect (status active) is replaced: the boundary of active-medication.rq."""
    from service_client import scenario_resources

    resources = scenario_resources("example-03-renal-impairment")["carmen"]
    for resource in resources:
        if resource["resourceType"] == "MedicationRequest" and "pregabalin" in json.dumps(resource).lower():
            resource["status"] = "stopped"
    path = tmp_path / "stopped.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}))
    bundle = json.loads(invoke("recommend", "--as-of", "2026-11-24", "--format", "fhir", str(path)).stdout)
    assert_closed(bundle)
    assert not any("priorPrescription" in r or any(n["text"].startswith(apply.REPLACES_NOTE) for n in r.get("note", []))
                   for r in _medication_requests(bundle, "pregabalin"))


def test_turtle_input_names_the_replaced_record_in_the_note_only(engine):
    """A record not read from FHIR is not known to be a MedicationRequest (it may be what a patient says
    they take): no priorPrescription is claimed, and the note names the record to stop; both engines
    find the same record in effect."""
    result, _ = run("example-03-renal-impairment", engine)
    bundle = recommend_bundle(result)
    assert_closed(bundle)
    carmen = next(p for p in result["patients"] if p["patient"] == "carmen")
    active = [m for m in carmen["facts"]["activeMedication"] if m["drug"] == "pregabalin"]
    assert len(active) == 1
    proposed = _medication_requests(bundle, "pregabalin")
    assert proposed
    for request in proposed:
        assert "priorPrescription" not in request
        assert any(n["text"].startswith(apply.REPLACES_NOTE) and apply.record_name(active[0]["record"]) in n["text"]
                   for n in request["note"])


# ---------------------------------------------------------------- OperationOutcome: whose findings

def test_each_operation_outcome_names_its_patient_and_codes_issues_by_data_quality_category():
    """review2 entry 18: a consumer indexing the Bundle by resource type can attach data findings to
    their patient (the extension's reference is the Patient entry); a missing datum is 'required'."""
    _, validation = run("absurd-values", "oxigraph")
    bundle = validate_bundle(validation)
    assert_closed(bundle)
    resources = by_url(bundle)
    outcomes = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "OperationOutcome"]
    assert outcomes and len(outcomes) == len(validation["patients"])
    named = []
    for outcome in outcomes:
        (extension,) = [x for x in outcome["extension"] if x["url"] == apply.OUTCOME_PATIENT]
        patient = resources[extension["valueReference"]["reference"]]
        assert patient["resourceType"] == "Patient"
        named.append(patient["identifier"][0]["value"])
        for issue in outcome["issue"]:
            code = (issue.get("details", {}).get("coding") or [{}])[0].get("code", "")
            if code.startswith("data-missing-"):
                assert issue["code"] == "required", issue
            elif code in ("data-value-out-of-range", "data-date-before-birth", "data-date-in-future"):
                assert issue["code"] == "business-rule", issue
            elif code in ("data-malformed-value", "data-malformed-date", "data-unit-not-convertible"):
                assert issue["code"] == "value", issue
    assert sorted(named) == sorted(p["patient"] for p in validation["patients"])
