"""Test tool: write a scenario's RDF patient graph as FHIR R4 (a Bundle, or Bulk Data NDJSON files).

Codes come from the ontology's mappings (the first standard code of each concept, else the project's
CodeSystem), units as UCUM Quantities, IVIG courses as one MedicationAdministration per infusion day
(planned ones as a MedicationRequest with a boundsPeriod). The FHIR reader must give the same results
on the twin as on the RDF original. This is the inverse of neuropathy_kg.fhir, written independently.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import rdflib
from rdflib import RDF, XSD
from rdflib.namespace import SKOS

from neuropathy_kg import NKG, guideline

PROJECT_SYSTEM = "https://w3id.org/neuropathy-kg/CodeSystem/concepts"
UCUM = "http://unitsofmeasure.org"
PREFERRED_SYSTEMS = ("http://loinc.org", "http://hl7.org/fhir/sid/icd-10-cm", "http://snomed.info/sct",
                     "http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc")


def _code_systems() -> list[tuple[str, str]]:
    g = guideline.ontology()
    return [(str(g.value(s, NKG.iriPrefix)), str(g.value(s, NKG.fhirSystem))) for s in g.subjects(RDF.type, NKG.CodeSystem)]


def coding(concept: rdflib.URIRef) -> dict:
    g = guideline.ontology()
    label = str(g.value(concept, rdflib.RDFS.label) or "")
    candidates = []
    for prop in (SKOS.exactMatch, SKOS.closeMatch):
        for code_iri in sorted(g.objects(concept, prop)):
            for prefix, system in _code_systems():
                if str(code_iri).startswith(prefix) and system in PREFERRED_SYSTEMS:
                    candidates.append({"system": system, "code": str(code_iri)[len(prefix):], "display": label})
    if candidates:
        return {"coding": [candidates[0]], "text": label}
    local = str(concept)[len(str(NKG)):]
    return {"coding": [{"system": PROJECT_SYSTEM, "code": local, "display": label}], "text": label}


def _text(graph, node, prop) -> str | None:
    value = graph.value(node, prop)
    return None if value is None else str(value)


def _number(value: rdflib.Literal):
    python = value.toPython()
    if isinstance(python, bool) or not isinstance(python, (int, float)) and not hasattr(python, "as_tuple"):
        return str(value)
    number = float(python)
    return int(number) if number.is_integer() else number


def resources(graph: rdflib.Graph) -> list[dict]:
    out: list[dict] = []
    for patient in sorted(graph.subjects(RDF.type, NKG.Patient)):
        pid = _text(graph, patient, NKG.patientId) or str(patient).rsplit("/", 1)[-1]
        resource = {"resourceType": "Patient", "id": pid}
        if _text(graph, patient, NKG.birthDate):
            resource["birthDate"] = _text(graph, patient, NKG.birthDate)
        if _text(graph, patient, NKG.sex):
            resource["gender"] = _text(graph, patient, NKG.sex)
        if graph.value(patient, NKG.deceased) is not None and graph.value(patient, NKG.deceased).toPython() is True:
            resource["deceasedBoolean"] = True
        out.append(resource)
        subject = {"reference": f"Patient/{pid}"}
        ids = {record: f"{pid}-{index}" for index, record in enumerate(sorted(graph.subjects(NKG.subject, patient)))}
        for index, record in enumerate(sorted(graph.subjects(NKG.subject, patient))):
            rid = f"{pid}-{index}"
            kind = graph.value(record, RDF.type)
            if kind == NKG.ConditionRecord:
                resource = {"resourceType": "Condition", "id": rid, "subject": subject, "code": coding(graph.value(record, NKG.code))}
                if _text(graph, record, NKG.clinicalStatus):
                    resource["clinicalStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                              "code": _text(graph, record, NKG.clinicalStatus)}]}
                if _text(graph, record, NKG.recordedDate):
                    resource["recordedDate"] = _text(graph, record, NKG.recordedDate)
                if _text(graph, record, NKG.onsetDate):
                    resource["onsetDateTime"] = _text(graph, record, NKG.onsetDate)
                out.append(resource)
            elif kind in (NKG.ObservationRecord, NKG.ProcedureRecord) and kind == NKG.ProcedureRecord:
                resource = {"resourceType": "Procedure", "id": rid, "status": "completed", "subject": subject,
                            "code": coding(graph.value(record, NKG.code))}
                if _text(graph, record, NKG.date):
                    resource["performedDateTime"] = _text(graph, record, NKG.date)
                out.append(resource)
            elif kind == NKG.ObservationRecord:
                resource = {"resourceType": "Observation", "id": rid, "status": "final", "subject": subject,
                            "code": coding(graph.value(record, NKG.code))}
                if _text(graph, record, NKG.date):
                    resource["effectiveDateTime"] = _text(graph, record, NKG.date) + "T09:30:00+01:00"
                value = graph.value(record, NKG.value)
                concept = graph.value(record, NKG.valueConcept)
                if concept is not None:
                    resource["valueCodeableConcept"] = coding(concept)
                elif value is not None and value.datatype == XSD.boolean:
                    resource["valueBoolean"] = value.toPython()
                elif value is not None:
                    quantity = {"value": _number(value)}
                    unit = _text(graph, record, NKG.unit)
                    if unit:
                        quantity.update({"unit": unit, "system": UCUM, "code": unit})
                    resource["valueQuantity"] = quantity
                out.append(resource)
            elif kind == NKG.MedicationUse:
                resource = {"resourceType": "MedicationRequest", "id": rid, "intent": "order", "subject": subject,
                            "status": _text(graph, record, NKG.status) or "unknown",
                            "medicationCodeableConcept": coding(graph.value(record, NKG.drug))}
                dosage: dict = {"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}
                if graph.value(record, NKG.dailyDose) is not None:
                    dosage["doseAndRate"] = [{"doseQuantity": {"value": _number(graph.value(record, NKG.dailyDose)),
                                                               "unit": _text(graph, record, NKG.unit), "system": UCUM,
                                                               "code": _text(graph, record, NKG.unit)}}]
                bounds = {k: _text(graph, record, p) for k, p in (("start", NKG.startDate), ("end", NKG.endDate)) if _text(graph, record, p)}
                if bounds:
                    dosage["timing"]["repeat"]["boundsPeriod"] = bounds
                    resource["authoredOn"] = bounds.get("start")
                resource["dosageInstruction"] = [dosage]
                replaced = graph.value(record, NKG.replaces)
                if replaced in ids:
                    resource["priorPrescription"] = {"reference": f"MedicationRequest/{ids[replaced]}"}
                out.append(resource)
            elif kind == NKG.IvigCourse:
                out.extend(_ivig(graph, record, rid, subject))
            elif kind == NKG.IntoleranceRecord:
                out.append({"resourceType": "AllergyIntolerance", "id": rid, "patient": subject,
                            "code": {"text": "Immune globulin (human)"}})
    return out


def _ivig(graph, record, rid, subject) -> list[dict]:
    medication = {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02", "display": "immunoglobulins, normal human"}]}
    start, end = _text(graph, record, NKG.startDate), _text(graph, record, NKG.endDate)
    dose = graph.value(record, NKG.dailyDose)
    quantity = {"value": _number(dose), "unit": "g", "system": UCUM, "code": "g"} if dose is not None else None
    if _text(graph, record, NKG.status) == "planned":
        dosage = {"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "boundsPeriod": {"start": start, "end": end}}}}
        if quantity:
            dosage["doseAndRate"] = [{"doseQuantity": quantity}]
        return [{"resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "plan", "subject": subject,
                 "medicationCodeableConcept": medication, "dosageInstruction": [dosage]}]
    days = int(graph.value(record, NKG.infusionDays) or 0)
    first = dt.date.fromisoformat(start)
    out = []
    for offset in range(days):
        administration = {"resourceType": "MedicationAdministration", "id": f"{rid}-day{offset + 1}", "status": "completed",
                          "subject": subject, "medicationCodeableConcept": medication,
                          "effectiveDateTime": (first + dt.timedelta(days=offset)).isoformat() + "T08:00:00Z"}
        if quantity:
            administration["dosage"] = {"dose": quantity}
        out.append(administration)
    return out


def write_bundle(graph: rdflib.Graph, path: Path, bundle_type: str = "collection") -> Path:
    entries = [{"fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}", "resource": r} for r in resources(graph)]
    path.write_text(json.dumps({"resourceType": "Bundle", "type": bundle_type, "entry": entries}, indent=1))
    return path


def write_ndjson(graph: rdflib.Graph, folder: Path) -> Path:
    """One file per resource type, as a Bulk Data export writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[dict]] = {}
    for resource in resources(graph):
        by_type.setdefault(resource["resourceType"], []).append(resource)
    for kind, items in by_type.items():
        (folder / f"{kind}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items))
    return folder
