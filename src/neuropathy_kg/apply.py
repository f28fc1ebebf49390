"""What FHIR CPG `$apply` of the guideline's PlanDefinition returns for a patient, built from the pipeline.

`recommend_bundle(document)` turns the recommend command's JSON (interface.md) into a FHIR Bundle of
type collection holding, per patient, the Patient, a RequestGroup (status active, intent proposal,
instantiating the PlanDefinition of `export fhir-cpg`, one action per derived action in catalogue order;
an action of several drugs, derived once per drug, holds a sub-action per drug) and the request each
action proposes, by the action's CPG activity type (ontology/alignment.ttl):

- order-medication: MedicationRequest (intent option) instantiating the action's ActivityDefinition (for
  a drug dosed by renal band: the patient's band's), with the pipeline's computed dose as Dosage (daily
  amounts split by the ActivityDefinition's times a day, the maximum as maxDosePerPeriod);
- order-service: ServiceRequest; collect-information and enrollment: Task (as the CPG IG's
  Questionnaire and Enrollment Task profiles are).

Every request carries the cpg-rationale extension with the rationale text. An action for which
`missingData` names a missing datum, or that should carry a dose and has none, is a draft: no dose,
and the missing datum stated (a note and the project's missing-data extension).

`validate_bundle(document)` turns the validate JSON into DetectedIssues (one per pitfall finding) and an
OperationOutcome per patient (its data findings, the patient named by the extension OUTCOME_PATIENT,
each issue's code by the finding's data-quality category). Both Bundles pass the fhir.resources R4B
models (the version of the CPG export, cpg.py) before they are returned; every reference is a urn:uuid
fullUrl of the same Bundle, but a proposed MedicationRequest's priorPrescription: the order in effect
it replaces, the patient's own record (``MedicationRequest/<id>`` where it was read from, with its
record IRI as identifier; the IRI alone for records not read from FHIR). No clinical number is made here: doses, due dates and rationales come from the
pipeline, activity types, codes, citations and dose timings from the guideline graph via cpg.py.
"""

from __future__ import annotations

import re
import uuid
from functools import cache

from rdflib import RDFS, URIRef

from . import NKG, guideline
from .cpg import CPG_ACTIVITY, PROJECT_CODES, UCUM, ExportError, _clean, export_bundle
from .engine import local_name

RATIONALE = "http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-rationale"
MISSING_DATA = f"{NKG}StructureDefinition/missing-data"
PATIENT_ID_SYSTEM = f"{NKG}patient-id"
RECORD_SYSTEM = "urn:ietf:rfc:3986"
#: The request resource each CPG activity type proposes (CPG IG STU2 activity profiles).
REQUEST_KIND = {"order-medication": "MedicationRequest", "order-service": "ServiceRequest",
                "collect-information": "Task", "enrollment": "Task"}
#: The start of the note on a proposed MedicationRequest that replaces an order in effect (_replacing).
REPLACES_NOTE = "Replaces the current"
#: Where the FHIR reader puts a resource's records: <this><patient id>/<type>/<id> (fhir.py BASE).
FHIR_RECORD = re.compile(r"urn:neuropathy-kg:fhir:Patient/[^/]+/(?P<type>[A-Za-z]+)/(?P<id>[A-Za-z0-9.-]{1,64})")
#: validate severities (SHACL) in DetectedIssue and OperationOutcome terms.
ISSUE_SEVERITY = {"violation": "high", "warning": "moderate", "info": "low"}
OUTCOME_SEVERITY = {"violation": "error", "warning": "warning", "info": "information"}
#: The OperationOutcome's patient: OperationOutcome has no subject element in FHIR R4, so this extension
#: (valueReference, the Patient entry of the same Bundle) says whom the data findings are about.
OUTCOME_PATIENT = f"{NKG}StructureDefinition/outcome-patient"
#: A data finding's data-quality category (ontology/data-quality.ttl, nkg:dataQualityCategory) as a FHIR
#: IssueType: a datum missing is "required", a value FHIR cannot read "value", an implausible one
#: "business-rule" (it breaks a rule of the data, not of FHIR's structure).
OUTCOME_CODE = {"dq-completeness": "required", "dq-conformance": "value", "dq-plausibility": "business-rule"}


class ApplyError(ExportError):
    """A resource failed its FHIR model: a bug here, reported in one line."""


# ---------------------------------------------------------------- the CPG export, indexed once

class _Plan:
    """The PlanDefinition, ActivityDefinitions and Citations of `export fhir-cpg`, indexed."""

    def __init__(self) -> None:
        resources = [entry["resource"] for entry in export_bundle()["entry"]]
        plan = next(r for r in resources if r["resourceType"] == "PlanDefinition")
        self.canonical = f"{plan['url']}|{plan['version']}"
        self.url, self.title = plan["url"], plan.get("title", "")
        self.actions = {action["id"]: action for action in plan["action"]}
        self.activities = {r["url"]: r for r in resources if r["resourceType"] == "ActivityDefinition"}
        self.citations = {r["url"]: r for r in resources if r["resourceType"] == "Citation"}
        graph = guideline.ontology()
        self.band_of = {}  # ActivityDefinition url -> the renal band code it serves
        self.drug_of = {}  # ActivityDefinition url -> the local name of its drug
        for url in self.activities:
            band = graph.value(URIRef(url), NKG.forRenalBand)
            if band is not None:
                self.band_of[url] = str(graph.value(band, NKG.bandCode))
            drug = graph.value(URIRef(url), NKG.drug)
            if drug is not None:
                self.drug_of[url] = local_name(drug)

    def activity_type(self, action_id: str) -> str | None:
        for concept in self.actions[action_id].get("code", []):
            for coding in concept.get("coding", []):
                if coding.get("system") == CPG_ACTIVITY:
                    return coding["code"]
        return None

    def activity_of_drug(self, drug: str, band: str | None) -> dict | None:
        """The ActivityDefinition of a drug's dose specification for a renal band (its band's where the
        drug is dosed by band, else its one): for actions whose PlanDefinition entry names no single drug
        (reduce-to-renal-dose: pregabalin or gabapentin), so that the schedule (times a day) is the
        specification's, never a once-daily default (the review found gabapentin 900 mg "in 1 dose")."""
        urls = [url for url, name in self.drug_of.items() if name == drug]
        banded = [url for url in urls if url in self.band_of]
        chosen = [url for url in banded if self.band_of[url] == band] if banded else [u for u in urls if u not in self.band_of]
        return self.activities[chosen[0]] if len(chosen) == 1 else None

    def activity_for(self, action_id: str, band: str | None) -> tuple[dict | None, bool]:
        """(the ActivityDefinition the action instantiates for this patient, whether it has one at all):
        the action's own, or among its renal-band sub-actions the one of the patient's band."""
        action = self.actions[action_id]
        if "definitionCanonical" in action:
            return self.activities.get(action["definitionCanonical"]), True
        banded = [sub["definitionCanonical"] for sub in action.get("action", []) if "definitionCanonical" in sub]
        if not banded:
            return None, False
        chosen = [url for url in banded if band is not None and self.band_of.get(url) == band]
        return (self.activities[chosen[0]] if len(chosen) == 1 else None), True


@cache
def plan() -> _Plan:
    return _Plan()


@cache
def _models() -> dict:
    from fhir.resources.R4B import (bundle, communicationrequest, detectedissue, medicationrequest, operationoutcome,
                                    patient, requestgroup, servicerequest, task)

    return {"Bundle": bundle.Bundle, "CommunicationRequest": communicationrequest.CommunicationRequest,
            "DetectedIssue": detectedissue.DetectedIssue, "MedicationRequest": medicationrequest.MedicationRequest,
            "OperationOutcome": operationoutcome.OperationOutcome, "Patient": patient.Patient,
            "RequestGroup": requestgroup.RequestGroup, "ServiceRequest": servicerequest.ServiceRequest, "Task": task.Task}


def check(resource: dict) -> dict:
    """The resource, after it passed its FHIR R4B model (ApplyError in one line if it did not)."""
    try:
        _models()[resource["resourceType"]].model_validate(resource)
    except Exception as error:  # pydantic's ValidationError, one line of it
        raise ApplyError(f"{resource['resourceType']}/{resource.get('id')} fails its FHIR R4B model: "
                         f"{' '.join(str(error).splitlines()[:3])}") from None
    return resource


# ---------------------------------------------------------------- small pieces

def _uuid(*parts: object) -> str:
    """A stable UUID for one resource of one patient on one date: the same input gives the same ids."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{NKG}apply/" + "/".join(str(p) for p in parts)))


def _ref(full_url: str, display: str | None = None) -> dict:
    return {"reference": full_url, **({"display": display} if display else {})}


def _number(value) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _quantity(value, unit: str | None) -> dict:
    quantity = {"value": _number(value), "unit": unit}
    if unit:
        quantity.update({"system": UCUM, "code": unit})
    return quantity


def _per_day(value, unit: str | None) -> dict:
    return {"numerator": _quantity(value, unit), "denominator": _quantity(1, "d")}


def _concept(code: str, display: str | None = None, system: str = PROJECT_CODES) -> dict:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _label(local: str) -> str:
    """The label of a catalogue entry or guideline concept, by its local name."""
    entry = guideline.catalogue().get(local)
    if entry:
        return entry.label
    return str(guideline.ontology().value(NKG[local], RDFS.label) or local)


def _fixed(activity: dict | None) -> bool:
    """Whether an ActivityDefinition's dose is one fixed amount for everyone (no per-kg amount)."""
    doses = [rate for dosage in (activity or {}).get("dosage", []) for rate in dosage.get("doseAndRate", [])]
    return bool(doses) and all("/kg" not in rate.get("doseQuantity", {}).get("unit", "/kg") for rate in doses)


def patient_resource(patient_id: str, as_of: str) -> tuple[str, dict]:
    """(fullUrl, Patient): the patient as the output names it (its id where FHIR allows it)."""
    fhir_id = patient_id if re.fullmatch(r"[A-Za-z0-9.-]{1,64}", patient_id) else _uuid(as_of, patient_id, "Patient")
    resource = {"resourceType": "Patient", "id": fhir_id,
                "identifier": [{"system": PATIENT_ID_SYSTEM, "value": patient_id}]}
    return f"urn:uuid:{_uuid(as_of, patient_id, 'Patient')}", resource


# ---------------------------------------------------------------- dosage

def dosages(dose: dict, activity: dict | None) -> list[dict]:
    """The pipeline's computed dose as FHIR Dosage: daily amounts split by the ActivityDefinition's
    times a day (its timing, route and bounds kept); the computed maximum as maxDosePerPeriod."""
    template = ((activity or {}).get("dosage") or [{}])[0]
    timing = template.get("timing") or {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
    times = int(timing.get("repeat", {}).get("frequency", 1))
    unit = dose.get("unit")
    base: dict = {"timing": timing}
    if "route" in template:
        base["route"] = template["route"]
    if "maxDailyAmount" in dose:
        base["maxDosePerPeriod"] = _per_day(dose["maxDailyAmount"], unit)
    elif "maxDosePerPeriod" in template:
        base["maxDosePerPeriod"] = template["maxDosePerPeriod"]
    limit = f"; at most {_number(dose['maxDailyAmount'])} {unit}/day" if "maxDailyAmount" in dose else ""
    if "dailyAmount" in dose:
        days = dose.get("days")
        text = f"{_number(dose['dailyAmount'])} {unit} a day"
        if days is not None:
            base["timing"] = {"repeat": {**timing.get("repeat", {}), "boundsDuration": _quantity(days, "d")}}
            text += f" for {_number(days)} days"
        if "totalAmount" in dose:
            text += f" (total {_number(dose['totalAmount'])} {unit})"
        return [{**base, "sequence": 1, "text": text + limit,
                 "doseAndRate": [{"doseQuantity": _quantity(float(dose["dailyAmount"]) / times, unit)}]}]
    steps = [(name, dose[key]) for name, key in (("start", "startDailyAmount"), ("target", "targetDailyAmount")) if key in dose]
    if steps and len(steps) == 2 and float(steps[0][1]) == float(steps[1][1]):
        steps = steps[:1]
    if steps:
        return [{**base, "sequence": index + 1,
                 "text": f"{name} {_number(daily)} {unit}/day in {times} dose(s){limit}",
                 "doseAndRate": [{"doseQuantity": _quantity(float(daily) / times, unit)}]}
                for index, (name, daily) in enumerate(steps)]
    if "minDailyAmount" in dose and "maxDailyAmount" in dose:
        return [{**base, "sequence": 1,
                 "text": f"{_number(dose['minDailyAmount'])}-{_number(dose['maxDailyAmount'])} {unit}/day in {times} dose(s)",
                 "doseAndRate": [{"doseRange": {"low": _quantity(float(dose["minDailyAmount"]) / times, unit),
                                                "high": _quantity(float(dose["maxDailyAmount"]) / times, unit)}}]}]
    return []


# ---------------------------------------------------------------- recommend -> $apply

def _missing_for(result: dict) -> dict[str, list[str]]:
    """Action id -> the missing data findings that name it."""
    found: dict[str, list[str]] = {}
    for missing in result.get("missingData", []):
        for action_id in missing["neededFor"]:
            found.setdefault(action_id, []).append(missing["id"])
    return found


def _derived_per_drug(action: dict, result: dict) -> bool:
    """Whether the patient has the action for several drugs (reduce-to-renal-dose for pregabalin and for
    gabapentin: the pipeline derives an action once per drug, pipeline.action_key)."""
    return sum(other["id"] == action["id"] for other in result["actions"]) > 1


def _request_kind(action_id: str) -> str:
    """The resource type of the request an action proposes, by its CPG activity type."""
    return REQUEST_KIND.get(plan().activity_type(action_id) or "", "Task")


def request_id(action: dict, result: dict, as_of: str) -> str:
    """The id of the request a derived action proposes: stable for the patient, date and action, and,
    where the patient has the action for several drugs, its drug."""
    drug = [action["dose"]["drug"]] if _derived_per_drug(action, result) else []
    return _uuid(as_of, result["patient"], _request_kind(action["id"]), action["id"], *drug)


def _request(action: dict, result: dict, as_of: str, patient_url: str, missing: list[str]) -> dict:
    """The request one derived action proposes, by its CPG activity type."""
    index = plan()
    action_id = action["id"]
    kind = _request_kind(action_id)
    code = {"coding": [_concept(action_id, action["label"])], "text": action["label"]}
    resource: dict = {"resourceType": kind, "id": request_id(action, result, as_of),
                      "extension": [{"url": RATIONALE, "valueMarkdown": action["rationale"]}]}
    notes = [f"Missing: {_label(m)} ({m}), needed for this action." for m in missing]
    draft = bool(missing)
    reason = [{"coding": [_concept(result["phenotype"], _label(result["phenotype"]))]} if result.get("phenotype") else {},
              {"text": action["rationale"]}]
    if kind == "MedicationRequest":
        band = (result.get("facts") or {}).get("renalBand")
        activity, definable = index.activity_for(action_id, band)
        if not definable and "dose" in action:  # an action for one of several drugs: the dose's drug decides
            activity = index.activity_of_drug(action["dose"]["drug"], band)
            definable = True
        # the guideline's one dose for everyone (a patch a day), which the pipeline does not compute
        fixed = "dose" not in action and "definitionCanonical" in index.actions[action_id] and _fixed(activity)
        if definable and not fixed and ("dose" not in action or activity is None):
            draft = True
            if not missing:
                notes.append("Not dosed: the dose specification for this patient could not be chosen "
                             "(no computed dose, or no renal band).")
        if draft:
            dosage = []
        elif fixed:
            dosage = activity["dosage"]
        else:
            dosage = dosages(action["dose"], activity) if "dose" in action else []
        product = (activity or {}).get("productCodeableConcept") or (
            {"coding": [_concept(action["dose"]["drug"])], "text": action["dose"]["drug"]} if "dose" in action else code)
        resource.update({"status": "draft" if draft else "active", "intent": "option",
                         "instantiatesCanonical": [activity["url"]] if activity else None,
                         "medicationCodeableConcept": product, "subject": _ref(patient_url), "authoredOn": as_of,
                         "reasonCode": reason, "dosageInstruction": dosage})
    elif kind == "ServiceRequest":
        resource.update({"status": "draft" if draft else "active", "intent": "option", "code": code,
                         "subject": _ref(patient_url), "authoredOn": as_of, "reasonCode": reason,
                         "occurrenceDateTime": action.get("due")})
    else:
        activity_code = index.activity_type(action_id)
        resource.update({"status": "draft" if draft else "requested", "intent": "option",
                         "code": {"coding": ([_concept(activity_code, system=CPG_ACTIVITY)] if activity_code else [])
                                  + [_concept(action_id, action["label"])], "text": action["label"]},
                         "description": action["label"], "for": _ref(patient_url), "authoredOn": as_of,
                         "reasonCode": reason[1],
                         "restriction": {"period": {"start": action["due"]}} if "due" in action else None})
    if kind == "MedicationRequest":
        prior, note = _replacing(result, (action.get("dose") or {}).get("drug"))
        if prior is not None:
            resource["priorPrescription"] = prior
        if note:
            notes.append(note)
    if draft:
        resource["extension"] += [{"url": MISSING_DATA, "valueCoding": _concept(m, _label(m))} for m in missing]
    resource["note"] = [{"text": text} for text in notes]
    return _clean(resource)


def record_name(iri: str) -> str:
    """A record as the output names it: <type>/<id> for the FHIR reader's records, else its IRI's end."""
    return "/".join(iri.rsplit("/", 2)[-2:])


def order_reference(iri: str) -> dict:
    """A reference to the patient's own MedicationRequest, by its record IRI: for a record the FHIR reader
    made of a MedicationRequest, a literal reference to it where it was read from (``MedicationRequest/<id>``,
    relative: the patient's record on the caller's FHIR server, as CDS Hooks and $apply callers resolve
    it) with the IRI as identifier; for any other record, the identifier alone (a logical reference)."""
    match = FHIR_RECORD.fullmatch(iri)
    if match and match["type"] == "MedicationRequest":
        return {"reference": f"MedicationRequest/{match['id']}", **_record(iri)}
    return _record(iri)


def _replacing(result: dict, drug: str | None) -> tuple[dict | None, str | None]:
    """(priorPrescription, note) of a proposed MedicationRequest of ``drug`` where the patient has records of
    it in effect (facts.activeMedication, queries/report/active-medication.rq): a dose change replaces the
    current order, so that accepting the proposal never gives both doses. priorPrescription where that is
    one MedicationRequest (the element holds one); the note names every such record, to stop when the new
    order starts."""
    if not drug:
        return None, None
    records = [m["record"] for m in (result.get("facts") or {}).get("activeMedication", []) if m["drug"] == drug]
    if not records:
        return None, None
    prior = order_reference(records[0]) if len(records) == 1 and record_name(records[0]).startswith("MedicationRequest/") else None
    names = ", ".join(record_name(iri) for iri in records)
    return prior, f"{REPLACES_NOTE} {drug} order ({names}): stop it when this one starts."


def _group_action(derived: list[tuple[dict, str]], present: set[str]) -> dict:
    """The RequestGroup action of one catalogue action: (derived action, its request's fullUrl) pairs, one
    but for an action of several drugs, which then holds a sub-action per drug (all of them apply)."""
    action = derived[0][0]
    planned = plan().actions[action["id"]]
    related = [r for r in planned.get("relatedAction", []) if r["actionId"] in present]
    group = {"id": action["id"], "title": action["label"], "description": planned.get("description") or action["label"],
             "code": planned.get("code"), "documentation": planned.get("documentation"), "relatedAction": related}
    if len(derived) == 1:
        return {**group, "textEquivalent": action["rationale"], "timingDateTime": action.get("due"),
                "resource": _ref(derived[0][1], action["label"])}
    return {**group, "groupingBehavior": "logical-group", "selectionBehavior": "all",
            "action": [_drug_action(one, url) for one, url in derived]}


def _drug_action(action: dict, request_url: str) -> dict:
    """The sub-action of one drug of an action derived for several drugs."""
    drug = action["dose"]["drug"]
    title = f"{action['label']}: {drug}"
    return {"id": f"{action['id']}-{drug}", "title": title, "textEquivalent": action["rationale"],
            "timingDateTime": action.get("due"), "resource": _ref(request_url, title)}


def leaf_actions(group: dict) -> list[dict]:
    """The RequestGroup's actions that propose a request (an action of several drugs: one per drug)."""
    return [leaf for action in group.get("action", []) for leaf in action.get("action") or [action]]


def patient_entries(result: dict, as_of: str) -> list[dict]:
    """Bundle entries for one patient's recommend result: Patient, RequestGroup, the proposed requests."""
    index = plan()
    pid = result["patient"]
    patient_url, patient = patient_resource(pid, as_of)
    missing = _missing_for(result)
    entries = [{"fullUrl": patient_url, "resource": patient}]
    actions = sorted(result["actions"], key=lambda a: guideline.catalogue()[a["id"]].order)  # catalogue order (kept)
    present = {a["id"] for a in actions}
    derived: dict[str, list[tuple[dict, str]]] = {}
    for action in actions:
        request = _request(action, result, as_of, patient_url, missing.get(action["id"], []))
        url = f"urn:uuid:{request['id']}"
        entries.append({"fullUrl": url, "resource": request})
        derived.setdefault(action["id"], []).append((action, url))
    group_actions = [_group_action(pairs, present) for pairs in derived.values()]
    notes = [f"Missing: {_label(m['id'])} ({m['id']}), needed for {', '.join(m['neededFor'])}." for m in result.get("missingData", [])]
    if not result.get("inScope", True):
        notes.insert(0, "The patient is outside the guideline's scope: no action applies.")
    elif (result.get("facts") or {}).get("deceased"):
        notes.insert(0, "The patient is recorded as deceased: no action applies.")
    elif not actions:
        notes.insert(0, f"No action of the guideline applies as of {as_of}.")
    group = {"resourceType": "RequestGroup", "id": _uuid(as_of, pid, "RequestGroup"), "status": "active",
             "intent": "proposal", "instantiatesCanonical": [index.canonical], "subject": _ref(patient_url),
             "authoredOn": as_of, "code": {"text": index.title},
             "note": [{"text": text} for text in notes], "action": group_actions}
    entries.insert(1, {"fullUrl": f"urn:uuid:{group['id']}", "resource": _clean(group)})
    return entries


def _bundle(kind: str, key: str, entries: list[dict], checked: bool = True) -> dict:
    bundle = {"resourceType": "Bundle", "id": _uuid(kind, key), "type": "collection", "entry": entries}
    if checked:
        for entry in entries:
            check(entry["resource"])
        check(bundle)
    return bundle


def _document_bundle(kind: str, document: dict, entries_of) -> dict:
    """A recommend or validate JSON document (all its patients) as one Bundle of each patient's entries."""
    as_of = document["asOf"]
    entries = [entry for result in document["patients"] for entry in entries_of(result, as_of)]
    return _bundle(kind, f"{as_of}/" + ",".join(p["patient"] for p in document["patients"]), entries)


def recommend_bundle(document: dict) -> dict:
    """The recommend JSON (all its patients) as one FHIR Bundle of $apply results."""
    return _document_bundle("recommend", document, patient_entries)


def recommend_patient_bundle(result: dict, as_of: str, checked: bool = True) -> dict:
    """One patient's recommend result as its own Bundle (a line of --jsonl --format fhir). ``checked``:
    every resource through its fhir.resources R4B model first (ApplyError if one fails); the CDS Hooks
    service leaves that to the tests, which check the same builder on every scenario (a 16-card answer
    spent 35 of its 110 ms in the models, docs/decisions.md)."""
    return _bundle("recommend", f"{as_of}/{result['patient']}", patient_entries(result, as_of), checked)


# ---------------------------------------------------------------- validate -> DetectedIssue, OperationOutcome

def _record(iri: str) -> dict:
    """A logical reference to a patient record by its IRI (records are not resources of the Bundle)."""
    return {"identifier": {"system": RECORD_SYSTEM, "value": iri}, "display": iri.rsplit("/", 1)[-1]}


@cache
def _categories() -> dict[str, str]:
    """Catalogue id -> the local name of its data-quality category (ontology/data-quality.ttl)."""
    graph = guideline.ontology()
    return {local_name(entry): local_name(category) for entry, category in graph.subject_objects(NKG.dataQualityCategory)}


def _category(entry_id: str) -> str | None:
    return _categories().get(entry_id)


def issue_entries(result: dict, as_of: str) -> list[dict]:
    """Bundle entries for one patient's validate result: Patient, a DetectedIssue per pitfall finding and
    an OperationOutcome with its data findings."""
    pid = result["patient"]
    patient_url, patient = patient_resource(pid, as_of)
    entries = [{"fullUrl": patient_url, "resource": patient}]
    catalogue = guideline.catalogue()
    issues = []
    for index, finding in enumerate(result["findings"]):
        entry = catalogue.get(finding["id"])
        if entry is None or entry.kind != "Pitfall":
            issues.append(finding)
            continue
        implicated = [_record(finding.get("value", finding["focus"]))]
        detected = {"resourceType": "DetectedIssue", "id": _uuid(as_of, pid, "DetectedIssue", index, finding["id"], finding["message"]),
                    "status": "final", "code": {"coding": [_concept(entry.id, entry.label)], "text": entry.label},
                    "severity": ISSUE_SEVERITY[finding["severity"]], "patient": _ref(patient_url),
                    "identifiedDateTime": as_of, "implicated": implicated, "detail": finding["message"],
                    "reference": entry.iri,
                    "evidence": [{"code": [{"coding": [_concept(entry.id, entry.label)],
                                            "text": "cites " + ", ".join(entry.citations)}], "detail": implicated}]}
        detected = _clean(detected)
        entries.append({"fullUrl": f"urn:uuid:{detected['id']}", "resource": detected})
    outcome_issues = [{"severity": OUTCOME_SEVERITY[f["severity"]], "code": OUTCOME_CODE.get(_category(f["id"]), "invalid"),
                       "details": {"coding": [_concept(f["id"], _label(f["id"]))], "text": f["message"]},
                       "diagnostics": f"record {f.get('value', f['focus'])}"} for f in issues]
    if not outcome_issues:
        outcome_issues = [{"severity": "information", "code": "informational",
                           "details": {"text": f"No data findings for patient {pid}."}}]
    outcome = {"resourceType": "OperationOutcome", "id": _uuid(as_of, pid, "OperationOutcome"),
               "extension": [{"url": OUTCOME_PATIENT, "valueReference": _ref(patient_url, pid)}], "issue": outcome_issues}
    entries.append({"fullUrl": f"urn:uuid:{outcome['id']}", "resource": _clean(outcome)})
    return entries


def validate_bundle(document: dict) -> dict:
    """The validate JSON (all its patients) as one FHIR Bundle of DetectedIssues and OperationOutcomes."""
    return _document_bundle("validate", document, issue_entries)


def validate_patient_bundle(result: dict, as_of: str) -> dict:
    return _bundle("validate", f"{as_of}/{result['patient']}", issue_entries(result, as_of))


def fhir_lines(work, kind: str, as_of: str):
    """``work`` (patients -> recommend or validate results) whose results leave as (conforms, one FHIR
    Bundle a line) pairs, made in the worker that ran it (--jsonl --format fhir)."""
    import orjson

    make = recommend_patient_bundle if kind == "recommend" else validate_patient_bundle

    def encoded(patients):
        return [(r.get("conforms", True), orjson.dumps(make(r, as_of)).decode() + "\n") for r in work(patients)]
    return encoded
