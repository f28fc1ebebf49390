"""The FHIR R4 reader (../shared/spec/fhir-input.md): FHIR twins of every scenario give the same results
as their RDF originals, as a Bundle and as Bulk Data NDJSON; every path of the recognition tables;
doses, units, references, IVIG courses; bad lines; real-shaped synthetic EHR exports."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from pathlib import Path

import pytest
import rdflib
from click.testing import CliRunner
from rdflib.namespace import SKOS

from conftest import ROOT, expected, run, scenario_input, scenario_names
from fhir_twin import write_bundle, write_ndjson
from neuropathy_kg import NKG, fhir, guideline
from neuropathy_kg.cli import main
from neuropathy_kg.load import read_patients
from neuropathy_kg.pipeline import assess

SYNTHEA = ROOT.parent / "shared" / "data" / "synthea"


#: The orders a summed daily dose names (queries/facts/09-medications.ru): record names, which differ
#: between a Turtle node and its FHIR twin (as focus and value do); the count and the sum stay compared.
SUMMED_ORDERS = re.compile(r"(concurrent orders: )[^)]*\)")


def comparable(documents: tuple[dict, dict]) -> tuple[dict, dict]:
    """Results without record IRIs (focus, value and the records in effect name FHIR resources instead of
    Turtle nodes; their drugs are kept)."""
    recommendation, validation = json.loads(json.dumps(documents))
    for patient in recommendation["patients"]:
        patient["facts"]["activeMedication"] = sorted(m["drug"] for m in patient["facts"]["activeMedication"])
    for patient in validation["patients"]:
        for finding in patient["findings"]:
            finding.pop("focus")
            finding.pop("value", None)
            finding["message"] = SUMMED_ORDERS.sub(r"\1...)", finding["message"])
        patient["findings"].sort(key=lambda f: (f["id"], f["severity"], f["message"]))
    for patient in recommendation["patients"]:
        for action in patient["actions"]:
            action["rationale"] = SUMMED_ORDERS.sub(r"\1...)", action["rationale"])
    return recommendation, validation


def assess_paths(paths: list[str], as_of: str) -> tuple[dict, dict]:
    patients, errors = read_patients(paths)
    assert not errors, [str(e) for e in errors]
    return assess(patients, dt.date.fromisoformat(as_of), "oxigraph")


@pytest.mark.parametrize("name", [n for n in scenario_names() if scenario_input(n).suffix == ".ttl"])
def test_fhir_bundle_twin_gives_the_same_results(name, tmp_path):
    """Turtle scenarios only: a FHIR scenario is its own bundle."""
    graph = rdflib.Graph().parse(scenario_input(name))
    bundle = write_bundle(graph, tmp_path / "twin.json")
    assert comparable(assess_paths([str(bundle)], expected(name)["asOf"])) == comparable(run(name, "oxigraph"))


@pytest.mark.parametrize("name", [n for n in scenario_names() if scenario_input(n).suffix == ".ttl"])
def test_ndjson_twin_equals_the_bundle(name, tmp_path):
    graph = rdflib.Graph().parse(scenario_input(name))
    folder = write_ndjson(graph, tmp_path / "export")
    as_of = expected(name)["asOf"]
    ndjson = comparable(assess_paths([str(folder)], as_of))
    bundle = comparable(assess_paths([str(write_bundle(graph, tmp_path / "twin.json", "transaction"))], as_of))
    assert ndjson == bundle


# ---------------------------------------------------------------- recognition tables

def mapped_codes() -> list[tuple[str, str, str]]:
    g = guideline.ontology()
    systems = [(str(g.value(s, NKG.iriPrefix)), str(g.value(s, NKG.fhirSystem))) for s in g.subjects(rdflib.RDF.type, NKG.CodeSystem)]
    rows = []
    for prop in (SKOS.exactMatch, SKOS.closeMatch):
        for concept, code in g.subject_objects(prop):
            for prefix, system in systems:
                if str(code).startswith(prefix) and not system.endswith("/icd-10"):
                    rows.append((system, str(code)[len(prefix):], str(concept)[len(str(NKG)):]))
    return sorted(set(rows))


def classes_for(concept: str) -> tuple:
    kinds = fhir.vocabulary().classes[NKG[concept]]
    for allowed in (fhir.CONDITION_CLASSES, fhir.OBSERVATION_CLASSES, fhir.DRUG_CLASSES):
        if any(cls in kinds for cls in allowed):
            return allowed
    raise AssertionError(concept)


@pytest.mark.parametrize(("system", "code", "concept"), mapped_codes())
def test_every_mapped_code_is_recognised(system, code, concept):
    found = fhir.concept_of({"coding": [{"system": system, "code": code}]}, classes_for(concept), fhir.vocabulary())
    assert found == NKG[concept]


@pytest.mark.parametrize(("system", "code", "concept"), [
    ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9", "type-2-diabetes"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "E11.44", "asymmetric-diabetic-neuropathy"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "E11.42", "symmetric-diabetic-polyneuropathy"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "E11.40", "diabetic-neuropathy"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "I10", "hypertension"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "K74.60", "hepatic-disease"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "F33.1", "depression"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "G47.00", "sleep-disorder"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "E78.5", "hyperlipidemia"),
    ("http://hl7.org/fhir/sid/icd-10", "E11.44", "asymmetric-diabetic-neuropathy"),
    ("http://www.whocc.no/atc", "A10BB01", "glucose-lowering-drug"),
    ("http://www.whocc.no/atc", "A10AB01", "insulin"),
    ("http://www.whocc.no/atc", "A10BA02", "metformin"),
    ("http://www.whocc.no/atc", "N02AA01", "morphine"),
    ("http://www.whocc.no/atc", "N02AJ13", "opioid-unspecified"),
    ("https://w3id.org/neuropathy-kg/CodeSystem/concepts", "pain-vas", "pain-vas"),
    ("https://w3id.org/neuropathy-kg/CodeSystem/concepts", "asymmetric-diabetic-neuropathy", "asymmetric-diabetic-neuropathy"),
])
def test_hierarchical_and_project_codes(system, code, concept):
    found = fhir.concept_of({"coding": [{"system": system, "code": code}]}, classes_for(concept), fhir.vocabulary())
    assert found == NKG[concept]


@pytest.mark.parametrize(("text", "allowed", "concept"), [
    ("Painful diabetic lumbosacral radiculoplexus neuropathy", fhir.CONDITION_CLASSES, "asymmetric-diabetic-neuropathy"),
    ("Proximal diabetic neuropathy", fhir.CONDITION_CLASSES, "asymmetric-diabetic-neuropathy"),
    ("Diabetic amyotrophy, left thigh", fhir.CONDITION_CLASSES, "asymmetric-diabetic-neuropathy"),
    ("Distal symmetric diabetic polyneuropathy", fhir.CONDITION_CLASSES, "symmetric-diabetic-polyneuropathy"),
    ("Neuropathy due to type 2 diabetes mellitus (disorder)", fhir.CONDITION_CLASSES, "diabetic-neuropathy"),
    ("Alcoholic cirrhosis of liver", fhir.CONDITION_CLASSES, "hepatic-disease"),
    ("LYRICA 75 mg capsule", fhir.DRUG_CLASSES, "pregabalin"),
    ("Cymbalta 60 MG Delayed Release Oral Capsule", fhir.DRUG_CLASSES, "duloxetine"),
    ("5 ML SUFentanil 0.05 MG/ML Injection", fhir.DRUG_CLASSES, "opioid-unspecified"),
    ("Privigen (immune globulin intravenous, human) 10%", fhir.DRUG_CLASSES, "ivig"),
    ("10 g monofilament examination of both feet", fhir.PROCEDURE_CLASSES, "monofilament-test"),
])
def test_recognition_by_text(text, allowed, concept):
    assert fhir.concept_of({"text": text}, allowed, fhir.vocabulary()) == NKG[concept]


def test_unknown_codes_and_words_are_skipped():
    vocab = fhir.vocabulary()
    assert fhir.concept_of({"coding": [{"system": "http://snomed.info/sct", "code": "38341003x"}]}, fhir.CONDITION_CLASSES, vocab) is None
    assert fhir.concept_of({"text": "Fracture of ankle"}, fhir.CONDITION_CLASSES, vocab) is None
    assert fhir.concept_of({"text": "Insulin resistance"}, fhir.OBSERVATION_CLASSES, vocab) is None, "a drug word is not an observation"


# ---------------------------------------------------------------- doses and units

@pytest.mark.parametrize(("dosage", "text", "amount", "unit"), [
    ({"timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}, "doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg"}}]}, "", 150, "mg"),
    ({"timing": {"code": {"coding": [{"code": "BID"}]}}, "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "capsule"}}]}, "Pregabalin 75 MG Oral Capsule", 150, "mg"),
    ({"timing": {"code": {"text": "x", "coding": [{"code": "QHS"}]}}, "doseAndRate": [{"doseQuantity": {"value": 3, "code": "{tbl}", "system": "http://unitsofmeasure.org"}}]}, "gabapentin 100 MG Oral Capsule", 300, "mg"),
    ({"timing": {"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}}, "doseAndRate": [{"doseQuantity": {"value": 0.3, "unit": "G"}}]}, "", 0.6, "g"),
    ({"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}, "doseAndRate": [{"doseQuantity": {"value": 70, "unit": "milligram"}}]}, "", 10, "mg"),
    ({"doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg"}}]}, "", None, None),
    ({"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}, "doseAndRate": [{"doseQuantity": {"value": 1}}]}, "Simvastatin 10 MG Oral Tablet", 10, "mg"),
    ({"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}, "doseAndRate": [{"doseQuantity": {"value": 1}}]}, "insulin 100 UNT/ML Injectable Solution", None, None),
])
def test_daily_dose(dosage, text, amount, unit):
    got_amount, got_unit = fhir.daily_dose(dosage, text, fhir.vocabulary())
    assert (None if got_amount is None else round(got_amount, 6), got_unit) == (amount, unit)


@pytest.mark.parametrize(("quantity", "unit"), [
    ({"value": 1, "unit": "lbs"}, "[lb_av]"), ({"value": 1, "unit": "Kg"}, "kg"), ({"value": 1, "unit": "µmol/L"}, "umol/L"),
    ({"value": 1, "unit": "mL/min/1.73m2"}, "mL/min/{1.73_m2}"), ({"value": 1, "code": "mg/dL", "system": "http://unitsofmeasure.org", "unit": "milligram per deciliter"}, "mg/dL"),
    ({"value": 1, "unit": "stone"}, "stone"),
])
def test_unit_spellings(quantity, unit):
    assert fhir.unit_of(quantity, fhir.vocabulary()) == unit


def bundle(*resources: dict, kind: str = "collection") -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": kind, "entry": [
        {"fullUrl": r.get("_fullUrl"), "resource": {k: v for k, v in r.items() if k != "_fullUrl"}} for r in resources]}).encode()


PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1960-01-15", "gender": "male", "_fullUrl": "urn:uuid:0001"}


def admin(day: str, amount, rid: str, unit: str = "g") -> dict:
    return {"resourceType": "MedicationAdministration", "id": rid, "status": "completed", "subject": {"reference": "urn:uuid:0001"},
            "medicationCodeableConcept": {"text": "Gamunex-C immune globulin 10%"}, "effectiveDateTime": day,
            # Gamunex-C may be given intravenously or subcutaneously: only the route makes it IVIG.
            "dosage": {"dose": {"value": amount, "unit": unit},
                       "route": {"coding": [{"system": "http://snomed.info/sct", "code": "47625008", "display": "Intravenous route"}]}}}


def courses(graph: rdflib.Graph) -> list[tuple[str, str, int, float | None]]:
    out = []
    for course in graph.subjects(rdflib.RDF.type, NKG.IvigCourse):
        dose = graph.value(course, NKG.dailyDose)
        out.append((str(graph.value(course, NKG.startDate)), str(graph.value(course, NKG.endDate)),
                    int(graph.value(course, NKG.infusionDays)), None if dose is None else float(dose)))
    return sorted(out)


def test_infusion_days_with_gaps_of_at_most_two_days_form_one_course():
    days = ["2025-01-06", "2025-01-07", "2025-01-10", "2025-01-14"]  # gaps 0, 2, 3 days
    graph, problems, _count = fhir.to_graph("b.json", bundle(PATIENT, *[admin(d, 28, f"a{i}") for i, d in enumerate(days)]))
    assert not problems
    assert courses(graph) == [("2025-01-06", "2025-01-10", 3, 28.0), ("2025-01-14", "2025-01-14", 1, 28.0)]


def test_two_administrations_on_one_day_add_up():
    graph, _problems, _count = fhir.to_graph("b.json", bundle(PATIENT, admin("2025-01-06", 14, "a"), admin("2025-01-06T15:00:00Z", 14000, "b", unit="mg")))
    assert courses(graph) == [("2025-01-06", "2025-01-06", 1, 28.0)]


@pytest.mark.parametrize(("request_extra", "dates"), [
    ({"dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-12-01", "end": "2026-12-05"}}}}]}, ("2026-12-01", "2026-12-05", 5)),
    ({"authoredOn": "2026-12-01T10:00:00Z"}, ("2026-12-01", "2026-12-05", 5)),
])
def test_planned_ivig_request(request_extra, dates):
    request = {"resourceType": "MedicationRequest", "id": "r", "status": "draft", "intent": "plan", "subject": {"reference": "Patient/p1"},
               "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]}, **request_extra}
    graph, _problems, _count = fhir.to_graph("b.json", bundle(PATIENT, request))
    course = next(graph.subjects(rdflib.RDF.type, NKG.IvigCourse))
    assert str(graph.value(course, NKG.status)) == "planned"
    assert courses(graph)[0][:3] == dates


def test_references_contained_and_bundled_medications():
    medication = {"resourceType": "Medication", "id": "m1", "_fullUrl": "https://ehr.example/fhir/Medication/m1",
                  "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "596934", "display": "pregabalin 150 MG Oral Capsule"}]}}
    by_bundle = {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "intent": "order",
                 "subject": {"reference": "https://ehr.example/fhir/Patient/p1"}, "medicationReference": {"reference": "Medication/m1"},
                 "authoredOn": "2026-11-01", "dosageInstruction": [{"timing": {"code": {"coding": [{"code": "BID"}]}}, "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "capsule"}}]}]}
    contained = {"resourceType": "MedicationStatement", "id": "s1", "status": "active", "subject": {"reference": "Patient/p1"},
                 "contained": [{"resourceType": "Medication", "id": "x", "ingredient": [{"itemCodeableConcept": {"text": "Duloxetine"}}]}],
                 "medicationReference": {"reference": "#x"}, "effectivePeriod": {"start": "2026-10-01"},
                 "dosage": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}, "doseAndRate": [{"doseQuantity": {"value": 60, "unit": "mg"}}]}]}
    graph, problems, _count = fhir.to_graph("b.json", bundle(PATIENT, medication, by_bundle, contained, kind="searchset"))
    assert not problems
    uses = {str(graph.value(u, NKG.drug)).rsplit("/", 1)[-1]: float(graph.value(u, NKG.dailyDose)) for u in graph.subjects(rdflib.RDF.type, NKG.MedicationUse)}
    assert uses == {"pregabalin": 300.0, "duloxetine": 60.0}
    patients = set(graph.subjects(rdflib.RDF.type, NKG.Patient))
    assert len(patients) == 1, "relative, absolute and urn:uuid references name one patient"


def test_entered_in_error_and_refuted_are_skipped():
    wrong = {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"},
             "verificationStatus": {"coding": [{"code": "refuted"}]}, "code": {"text": "diabetic amyotrophy"}}
    error = {"resourceType": "Observation", "id": "o", "status": "entered-in-error", "subject": {"reference": "Patient/p1"},
             "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "valueQuantity": {"value": 700, "unit": "kg"}}
    graph, _problems, _count = fhir.to_graph("b.json", bundle(PATIENT, wrong, error))
    assert not list(graph.subjects(rdflib.RDF.type, NKG.ConditionRecord))
    assert not list(graph.subjects(rdflib.RDF.type, NKG.ObservationRecord))


def test_lone_resource_and_deceased_patient(tmp_path):
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient", "id": "solo", "deceasedDateTime": "2026-01-01"}))
    patients, errors = read_patients([str(path)])
    assert not errors and patients[0].id == "solo"
    assert (patients[0].iri, NKG.deceased, rdflib.Literal(True)) in patients[0].graph


def test_bad_ndjson_line_is_reported_and_the_rest_is_read(tmp_path):
    export = tmp_path / "export.ndjson"
    export.write_text(json.dumps({"resourceType": "Patient", "id": "a", "birthDate": "1950-01-01"}) + "\n"
                      + '{"resourceType": "Observation", "id": \n'
                      + json.dumps({"resourceType": "Patient", "id": "b"}) + "\n"
                      + json.dumps({"no": "resourceType"}) + "\n")
    result = CliRunner().invoke(main, ["recommend", "--as-of", "2026-11-24", "--format", "json", str(export)])
    assert result.exit_code == 2
    assert [p["patient"] for p in json.loads(result.stdout)["patients"]] == ["a", "b"]
    errors = [line for line in result.stderr.splitlines() if line]
    assert any("export.ndjson:2" in line and "not valid JSON" in line for line in errors)
    assert any("export.ndjson:4" in line and "no resourceType" in line for line in errors)
    assert "Traceback" not in result.stderr


def test_json_that_is_not_fhir(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"name": "not a resource"}))
    result = CliRunner().invoke(main, ["recommend", "--as-of", "2026-11-24", str(path)])
    assert result.exit_code == 2 and "data.json" in result.stderr and "not FHIR" in result.stderr


def test_detection_by_content_not_extension(tmp_path):
    graph = rdflib.Graph().parse(ROOT / "examples" / "04-hepatic-disease.ttl")
    bundle_path = write_bundle(graph, tmp_path / "export.data")
    patients, errors = read_patients([str(bundle_path)])
    assert not errors and [p.id for p in patients] == ["dmitri"]


# ---------------------------------------------------------------- realistic synthetic EHR exports

def synthea_files() -> list[Path]:
    return sorted(SYNTHEA.glob("*.json.gz")) if SYNTHEA.is_dir() else []


@pytest.mark.skipif(not synthea_files(), reason="../shared/data/synthea/ is not present (a user's clone has no shared/)")
def test_synthea_exports_convert_and_run(tmp_path):
    paths = []
    for source in synthea_files():
        target = tmp_path / source.name[:-3]
        target.write_bytes(gzip.decompress(source.read_bytes()))
        paths.append(str(target))
    patients, errors = read_patients(paths)
    assert not errors and len(patients) == len(paths)
    read_anywhere: set[str] = set()
    for patient in patients:
        kinds = {str(o).rsplit("/", 1)[-1] for o in patient.graph.objects(None, NKG.code)}
        assert {"body-weight", "pain-vas"} <= kinds, patient.id
        read_anywhere |= kinds | {str(o).rsplit("/", 1)[-1] for o in patient.graph.objects(None, NKG.drug)}
    assert {"hba1c", "serum-creatinine", "egfr", "type-2-diabetes", "diabetic-neuropathy", "hypertension",
            "hyperlipidemia", "insulin", "hydrocodone"} <= read_anywhere
    recommendation, validation = assess(patients, dt.date(2026, 11, 24), "oxigraph")
    by_id = {p["patient"]: p for p in recommendation["patients"]}
    terrilyn = by_id["14e244ea-324c-41c8-8ea2-f56082a1c07e"]
    assert terrilyn["inScope"] is True and terrilyn["facts"]["deceased"] is True and terrilyn["actions"] == []
    assert terrilyn["facts"]["creatinineClearance"]["method"] == "cockcroft-gault"
    others = [p for pid, p in by_id.items() if pid != terrilyn["patient"]]
    assert all(p["inScope"] is False and p["actions"] == [] for p in others)
    assert len(validation["patients"]) == len(paths)


# ---------------------------------------------------------------- second edition: decided by code, IVIG identity

@pytest.mark.parametrize("coding, concept", [
    ({"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G61.81", "display": "Chronic inflammatory demyelinating polyneuropathy"}, "non-diabetic-neuropathy"),
    ({"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G54.5", "display": "Neuralgic amyotrophy"}, "non-diabetic-neuropathy"),
    ({"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G62.9", "display": "Polyneuropathy, unspecified (diabetic patient)"}, "non-diabetic-neuropathy"),
    ({"system": "http://snomed.info/sct", "code": "128209004", "display": "Chronic inflammatory demyelinating polyneuropathy"}, "non-diabetic-neuropathy"),
    ({"system": "http://snomed.info/sct", "code": "999999999", "display": "Diabetic polyneuropathy"}, None),
    ({"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.42", "display": "anything at all"}, "symmetric-diabetic-polyneuropathy"),
])
def test_a_coding_in_a_known_system_is_decided_by_its_code(coding, concept):
    found = fhir.concept_of({"coding": [coding], "text": coding["display"]}, fhir.CONDITION_CLASSES, fhir.vocabulary())
    assert found == (NKG[concept] if concept else None)


@pytest.mark.parametrize("text, concept", [
    ("Polyneuropathy", None),
    ("Amyotrophy", None),
    ("Neuralgic amyotrophy in a patient with diabetes", "non-diabetic-neuropathy"),
    ("Non-diabetic polyneuropathy", "non-diabetic-neuropathy"),
    ("CIDP, type 2 diabetic", "non-diabetic-neuropathy"),
    ("Diabetic amyotrophy", "asymmetric-diabetic-neuropathy"),
    ("Painful diabetic polyneuropathy", "symmetric-diabetic-polyneuropathy"),
    # Review 1, D13: a negated required word does not say diabetic.
    ("Lumbosacral radiculoplexus neuropathy, not diabetic", None),
    ("Lumbosacral radiculoplexus neuropathy, non diabetic", None),
    ("Lumbosacral radiculoplexus neuropathy without diabetes", None),
    ("Lumbosacral radiculoplexus neuropathy, no diabetes", None),
    ("Lumbosacral radiculoplexus neuropathy in diabetes, not diabetic foot", "asymmetric-diabetic-neuropathy"),
])
def test_a_neuropathy_found_by_words_is_diabetic_only_when_the_words_say_so(text, concept):
    found = fhir.concept_of({"text": text}, fhir.CONDITION_CLASSES, fhir.vocabulary())
    assert found == (NKG[concept] if concept else None)


def _one_immune_globulin(medication: dict, route: dict | None = None) -> list:
    dosage = {"dose": {"value": 28, "unit": "g"}}
    if route is not None:
        dosage["route"] = route
    administration = {"resourceType": "MedicationAdministration", "id": "a1", "status": "completed",
                      "subject": {"reference": "urn:uuid:0001"}, "medicationCodeableConcept": medication,
                      "effectiveDateTime": "2026-11-10", "dosage": dosage}
    graph, _problems, _count = fhir.to_graph("b.json", bundle(PATIENT, administration))
    return courses(graph)


IV_ROUTE = {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}


@pytest.mark.parametrize("medication, route, is_ivig", [
    ({"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]}, None, True),
    ({"text": "Immune globulin intravenous (human) 10%"}, None, True),
    ({"text": "Privigen 10% solution"}, None, True),
    ({"text": "Immune globulin (human) 10%"}, IV_ROUTE, True),
    ({"text": "Immune globulin (human) 10%"}, None, False),
    ({"text": "Immune globulin (human) 10%"}, {"text": "Subcutaneous"}, False),
    ({"text": "Hepatitis B immune globulin (human) 1 mL"}, {"text": "Intramuscular"}, False),
    ({"text": "Cytomegalovirus immune globulin intravenous"}, IV_ROUTE, False),
    ({"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BB04", "display": "hepatitis B immunoglobulin"}]}, IV_ROUTE, False),
    ({"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA01", "display": "immunoglobulins, normal human, for extravascular adm."}]}, None, False),
    ({"text": "Hizentra (immune globulin subcutaneous)"}, None, False),
    # Review 1, D11: a hyperimmune globulin's words exclude IVIG whatever the length of IVIG's words.
    ({"text": "Rho(D) Immune Globulin Intravenous (Human)"}, IV_ROUTE, False),
    ({"text": "Rabies immune globulin intravenous"}, IV_ROUTE, False),
    ({"text": "Anti-D immunoglobulin intravenous"}, IV_ROUTE, False),
    ({"text": "Tetanus immune globulin intravenous"}, IV_ROUTE, False),
    ({"text": "Hepatitis B Immune Globulin Intravenous (Human)"}, IV_ROUTE, False),
    # D12: brands licensed only for intravenous use are IVIG; those for IV and SC use only with an IV route.
    ({"text": "Gamunex 10%"}, None, True),
    ({"text": "Carimune NF"}, None, True),
    ({"text": "Gammagard S/D"}, None, True),
    ({"text": "Alyglo 10%"}, None, True),
    ({"text": "Yimmugo"}, None, True),
    ({"text": "Gamunex-C"}, IV_ROUTE, True),
    ({"text": "Gamunex-C"}, None, False),
    ({"text": "Gamunex-C"}, {"text": "Subcutaneous"}, False),
    ({"text": "Gammaked 10%"}, IV_ROUTE, True),
    ({"text": "Gammaked 10%"}, None, False),
    ({"text": "Gammagard Liquid"}, IV_ROUTE, True),
    ({"text": "Gammagard Liquid"}, {"text": "Subcutaneous"}, False),
])
def test_only_intravenous_immune_globulin_is_ivig(medication, route, is_ivig):
    assert bool(_one_immune_globulin(medication, route)) is is_ivig
