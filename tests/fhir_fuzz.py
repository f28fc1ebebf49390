"""A hypothesis strategy for FHIR R4 input as exports get it wrong: resources of the types the reader
reads, with the keys it looks at holding values of any JSON shape (and, often, the right shape with
wrong values: bad dates, odd units, NaN, negative doses, dangling references). Shared by tests/test_fuzz.py
(bounded, in the suite) and bench/fuzz_fhir.py (a long run)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

TYPES = ["Patient", "Condition", "Observation", "Procedure", "AllergyIntolerance", "MedicationRequest",
         "MedicationStatement", "MedicationAdministration", "Medication", "Encounter", "Bundle"]
KEYS = ["subject", "patient", "code", "coding", "system", "display", "text", "valueQuantity", "value", "unit",
        "valueBoolean", "valueInteger", "valueCodeableConcept", "effectiveDateTime", "effectivePeriod", "start", "end",
        "issued", "status", "clinicalStatus", "verificationStatus", "recordedDate", "onsetDateTime", "onsetPeriod",
        "performedDateTime", "performedPeriod", "medicationCodeableConcept", "medicationReference", "medication",
        "reference", "contained", "ingredient", "itemCodeableConcept", "dosageInstruction", "dosage", "dose",
        "doseAndRate", "doseQuantity", "timing", "repeat", "frequency", "frequencyMax", "period", "periodUnit",
        "boundsPeriod", "authoredOn", "intent", "birthDate", "gender", "deceasedBoolean", "deceasedDateTime", "id",
        "resourceType", "entry", "resource", "fullUrl"]
SYSTEMS = ["http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm",
           "http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc", "http://unitsofmeasure.org",
           "https://w3id.org/neuropathy-kg/CodeSystem/concepts"]
CODES = ["29463-7", "2160-0", "14682-9", "2164-2", "33914-3", "4548-4", "72514-3", "E11.44", "E11.42", "E11.40", "K70",
         "187832", "25480", "72625", "10689", "J06BA02", "A10BA02", "pain-vas", "mrc-grade", "ivig-response",
         "neurologic-exam", "symmetric-involvement", "monofilament-test", "asymmetric-diabetic-neuropathy", "relapse"]
WORDS = ["2026-11-01", "2026-02-30", "2026-13", "20261101", "1900-01-01", "3000-01-01", "2026-11-01T25:61:00Z", "",
         "mg", "MG", "g", "kg", "[lb_av]", "umol/L", "mg/dL", "%", "{score}", "mm", "tablet", "TID", "QHS", "d", "wk", "h",
         "active", "relapse", "completed", "planned", "plan", "entered-in-error", "female", "male",
         "Patient/p1", "Patient/p2", "urn:uuid:p1", "#med", "Medication/m1", "pregabalin 75 MG Oral Capsule",
         "immune globulin", "IVIG", "amyotrophy", "polyneuropathy", "\\1", '" } DROP ALL #', "\ud800", "é"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**15, max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(WORDS), st.sampled_from(CODES), st.sampled_from(SYSTEMS),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5)),
    max_leaves=24,
)
LOINC, SNOMED, ICD, RXNORM, ATC, PROJECT = (SYSTEMS[0], SYSTEMS[1], SYSTEMS[2], SYSTEMS[3], SYSTEMS[4], SYSTEMS[6])
#: Codings the reader recognises, so that most fuzzed resources reach the rules with odd values.
KNOWN = [(LOINC, "29463-7"), (LOINC, "2160-0"), (LOINC, "14682-9"), (LOINC, "2164-2"), (LOINC, "33914-3"),
         (LOINC, "4548-4"), (LOINC, "72514-3"), (ICD, "E11.44"), (ICD, "E11.42"), (ICD, "E11.40"), (ICD, "K70.3"),
         (ICD, "I10"), (SNOMED, "44054006"), (RXNORM, "187832"), (RXNORM, "25480"), (RXNORM, "72625"),
         (RXNORM, "10689"), (ATC, "J06BA02"), (ATC, "A10BA02"), (PROJECT, "pain-vas"), (PROJECT, "mrc-grade"),
         (PROJECT, "ivig-response"), (PROJECT, "neurologic-exam"), (PROJECT, "symmetric-involvement"),
         (PROJECT, "monofilament-test"), (PROJECT, "asymmetric-diabetic-neuropathy"), (PROJECT, "localized-pain")]
coding = st.one_of(
    st.sampled_from(KNOWN).map(lambda pair: {"system": pair[0], "code": pair[1]}),
    st.fixed_dictionaries({"system": st.sampled_from(SYSTEMS), "code": st.sampled_from(CODES)}, optional={"display": st.sampled_from(WORDS)}),
)
known_concept = st.fixed_dictionaries({"coding": st.lists(coding, min_size=1, max_size=2)}, optional={"text": st.sampled_from(WORDS)})
concept = st.one_of(known_concept, known_concept, known_concept, values)
quantity = st.one_of(st.fixed_dictionaries({"value": st.one_of(st.floats(allow_nan=True), st.integers(-10**9, 10**9), scalars),
                                            "unit": st.sampled_from(WORDS)}, optional={"system": st.sampled_from(SYSTEMS),
                                                                                        "code": st.sampled_from(WORDS)}), values)
own = st.just({"reference": "Patient/p1"})
reference = st.one_of(own, own, own, st.fixed_dictionaries({"reference": st.sampled_from(WORDS)}), values)
clinical = st.sampled_from(["active", "relapse", "recurrence", "resolved"]).map(lambda c: {"coding": [{"code": c}]})
OPTIONAL_KEYS = {
    "id": st.one_of(st.sampled_from(["p1", "p2", "m1", "x"]), st.text(max_size=8)),
    "subject": reference, "patient": reference, "code": concept, "clinicalStatus": st.one_of(clinical, concept),
    "verificationStatus": concept, "valueQuantity": quantity, "valueBoolean": values, "valueCodeableConcept": concept,
    "effectiveDateTime": st.one_of(st.sampled_from(WORDS), st.dates().map(str)), "effectivePeriod": values,
    "recordedDate": st.sampled_from(WORDS), "status": st.sampled_from(WORDS), "medicationCodeableConcept": concept,
    "medicationReference": reference, "intent": st.sampled_from(WORDS), "dosage": values,
    "dosageInstruction": st.lists(st.fixed_dictionaries({"doseAndRate": st.lists(st.fixed_dictionaries({"doseQuantity": quantity}), max_size=1)},
                                                        optional={"timing": values}), max_size=2),
    "birthDate": st.sampled_from(WORDS), "gender": st.sampled_from(WORDS), "deceasedBoolean": values,
    "contained": st.lists(values, max_size=2), "extra": values,
}
CLINICAL = ["Condition", "Observation", "Procedure", "AllergyIntolerance", "MedicationRequest", "MedicationStatement",
            "MedicationAdministration"]
REQUIRED = {"resourceType": st.sampled_from(CLINICAL), "id": st.sampled_from(["r1", "r2", "r3", "r4"]), "subject": own,
            "code": known_concept, "medicationCodeableConcept": known_concept, "substance": known_concept}
#: Mostly well-formed resources of the patient with odd values; some of any shape at all.
plausible = st.fixed_dictionaries(REQUIRED, optional={k: v for k, v in OPTIONAL_KEYS.items() if k not in REQUIRED})
wild = st.fixed_dictionaries({"resourceType": st.sampled_from(TYPES)}, optional=OPTIONAL_KEYS)
resource = st.one_of(plausible, plausible, plausible, wild)


@st.composite
def fhir_documents(draw) -> tuple[str, bytes]:
    """(file name, bytes): a Bundle, a lone resource, or NDJSON lines, of fuzzed resources."""
    resources = draw(st.lists(resource, min_size=1, max_size=8))
    patients = [{"resourceType": "Patient", "id": "p1", "birthDate": "1950-01-01", "gender": "female"}]
    form = draw(st.sampled_from(["bundle", "lone", "ndjson"]))
    if form == "bundle":
        entries = [{"fullUrl": draw(st.sampled_from(WORDS)), "resource": r} for r in patients + resources]
        return "fuzz.json", json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode("utf-8", "surrogatepass")
    if form == "lone":
        return "fuzz.json", json.dumps(resources[0]).encode("utf-8", "surrogatepass")
    return "fuzz.ndjson", "\n".join(json.dumps(r) for r in patients + resources).encode("utf-8", "surrogatepass")
