"""A deterministic synthetic population as FHIR R4 Bulk Data NDJSON (one file per resource type).

    .venv/bin/python bench/synthetic.py N OUTPUT_FOLDER [--seed S] [--rich]

Each patient is drawn from the guideline's scenario space: in or out of scope, both phenotypes and an
unknown subtype, relapses (recorded or by pain score), IVIG courses with measured responses, first-line
drugs at varied doses (subtherapeutic, adequate, above band maxima), opioids, renal function as serum
creatinine (mg/dL or umol/L), eGFR or measured clearance, HbA1c, comorbidities, a few data errors, and
unrelated resources (encounters) as an export carries them. Used by bench/population.py and the tests.

Rarer cases come from a second random stream (Writer.rare), so that adding them left the rest of the
population as it was: localised pain, immune globulin intolerance, IVIG in the symmetric phenotype, and
one of each kind of data error the shapes report (a missing birth date, sex, date, value or dose; a
malformed date or value; a date before birth or in the future). With them, a population of 10,000
exercises every action and finding id of the catalogue (bench/equivalence.py lists any it did not).

``--rich`` (generate(..., rich=True)) gives each patient the history a relapsing patient carries, from a
third random stream, after everything above (so the default population is unchanged): several more pain
scores, weights and creatinines over the last two years, one or two earlier IVIG courses of five
infusions with their pain scores for the patients who had a course, and earlier medication changes
(requests stopped at another dose). About 90 triples per patient instead of about 47.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from pathlib import Path

LOINC, ICD10, SNOMED, RXNORM, ATC = ("http://loinc.org", "http://hl7.org/fhir/sid/icd-10-cm", "http://snomed.info/sct",
                                     "http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc")
UCUM = "http://unitsofmeasure.org"
PROJECT = "https://w3id.org/neuropathy-kg/CodeSystem/concepts"
AS_OF = dt.date(2026, 11, 24)
DRUGS = {
    "pregabalin": ("187832", "Pregabalin 75 MG Oral Capsule", [75, 150, 300, 450, 600, 900]),
    "gabapentin": ("25480", "gabapentin 300 MG Oral Capsule", [300, 900, 1800, 3600]),
    "duloxetine": ("72625", "duloxetine 60 MG Delayed Release Oral Capsule", [60, 120, 180]),
    "tramadol": ("10689", "tramadol hydrochloride 50 MG Oral Tablet", [100, 200]),
    "amitriptyline": ("704", "amitriptyline hydrochloride 25 MG Oral Tablet", [25, 50]),
    "metformin": ("6809", "metformin hydrochloride 500 MG Oral Tablet", [1000, 2000]),
}


def _day(offset: int) -> str:
    return (AS_OF - dt.timedelta(days=offset)).isoformat()


def _quantity(value, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


class Writer:
    def __init__(self, rng: random.Random, rare: random.Random, history: random.Random | None = None):
        self.rng = rng
        self.rare = rare
        self.history = history  # the --rich stream; None for the default population
        self.resources: dict[str, list[dict]] = {}
        self.counter = 0

    def add(self, resource: dict) -> dict:
        self.counter += 1
        resource.setdefault("id", f"r{self.counter}")
        self.resources.setdefault(resource["resourceType"], []).append(resource)
        return resource

    def observation(self, pid: str, system: str, code: str, value, unit: str | None, day: str, display: str = "") -> dict:
        resource = {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": system, "code": code, "display": display}]},
                    "effectiveDateTime": day + "T09:00:00Z"}
        if isinstance(value, bool):
            resource["valueBoolean"] = value
        else:
            resource["valueQuantity"] = _quantity(value, unit) if unit else {"value": value}
        return self.add(resource)

    def condition(self, pid: str, system: str, code: str, status: str, day: str, display: str = "") -> None:
        self.add({"resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
                  "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
                  "code": {"coding": [{"system": system, "code": code, "display": display}]}, "recordedDate": day})

    def medication(self, pid: str, drug: str, daily_mg: float, start: str, status: str = "active") -> dict:
        code, name, _doses = DRUGS[drug]
        return self.add({"resourceType": "MedicationRequest", "status": status, "intent": "order", "subject": {"reference": f"Patient/{pid}"},
                         "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": name}]},
                         "authoredOn": start,
                         "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                                                "doseAndRate": [{"doseQuantity": _quantity(daily_mg, "mg")}]}]})

    def ivig_course(self, pid: str, start_offset: int, grams: float, days: int = 5) -> None:
        for k in range(days):
            self.add({"resourceType": "MedicationAdministration", "status": "completed", "subject": {"reference": f"Patient/{pid}"},
                      "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "J06BA02", "display": "immunoglobulins, normal human"}]},
                      "effectiveDateTime": _day(start_offset - k) + "T08:00:00Z", "dosage": {"dose": _quantity(grams, "g")}})


def patient(writer: Writer, index: int) -> None:
    rng, pid = writer.rng, f"p{index:07d}"
    sex = rng.choice(["female", "male"])
    record = {"resourceType": "Patient", "id": pid, "gender": sex,
              "birthDate": f"{rng.randint(1935, 1985)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
    if rng.random() < 0.02:
        record["deceasedBoolean"] = True
    if writer.rare.random() < 0.005:
        del record["birthDate"]
    if writer.rare.random() < 0.005:
        del record["gender"]
    writer.add(record)
    data_errors(writer, pid, record)
    for _ in range(rng.randint(1, 4)):  # what exports are mostly made of
        writer.add({"resourceType": "Encounter", "status": "finished", "subject": {"reference": f"Patient/{pid}"},
                    "class": {"code": "AMB"}, "period": {"start": _day(rng.randint(1, 900))}})
    weight = round(rng.uniform(50, 120), 1)
    if rng.random() < 0.9:
        if rng.random() < 0.1:
            writer.observation(pid, LOINC, "29463-7", round(weight / 0.45359237, 1), "[lb_av]", _day(rng.randint(1, 60)), "Body Weight")
        else:
            writer.observation(pid, LOINC, "29463-7", weight, "kg", _day(rng.randint(1, 60)), "Body Weight")
    renal = rng.random()
    creatinine = round(rng.uniform(0.6, 3.5), 2)
    if renal < 0.6:
        writer.observation(pid, LOINC, "2160-0", creatinine, "mg/dL", _day(rng.randint(1, 90)), "Creatinine")
    elif renal < 0.7:
        writer.observation(pid, LOINC, "14682-9", round(creatinine * 88.42), "umol/L", _day(rng.randint(1, 90)), "Creatinine")
    elif renal < 0.8:
        writer.observation(pid, LOINC, "33914-3", rng.randint(12, 110), "mL/min/{1.73_m2}", _day(rng.randint(1, 90)), "eGFR")
    elif renal < 0.85:
        writer.observation(pid, LOINC, "2164-2", rng.choice([14.9, 15, 29.9, 30, 59.9, 60, 85]), "mL/min", _day(rng.randint(1, 90)))
    if rng.random() < 0.8:
        writer.observation(pid, LOINC, "4548-4", round(rng.uniform(5.5, 10.5), 1), "%", _day(rng.randint(1, 200)), "HbA1c")
    writer.condition(pid, SNOMED, "44054006", "active", _day(rng.randint(1000, 5000)), "Diabetes mellitus type 2")
    for chance, system, code in ((0.4, SNOMED, "59621000"), (0.3, ICD10, "E78.5"), (0.05, ICD10, "K74.60"),
                                 (0.15, ICD10, "F33.1"), (0.1, ICD10, "G47.00")):
        if rng.random() < chance:
            writer.condition(pid, system, code, "active", _day(rng.randint(100, 3000)))
    if rng.random() < 0.3:
        if writer.history:
            history(writer, pid, weight, creatinine, had_ivig=False)
        return  # out of scope: no neuropathy recorded
    phenotype = rng.random()
    status = "relapse" if rng.random() < 0.4 else "active"
    relapse_offset = rng.randint(5, 60)
    if phenotype < 0.5:
        writer.condition(pid, ICD10, "E11.44", status, _day(relapse_offset if status == "relapse" else 700), "Type 2 DM with diabetic amyotrophy")
    elif phenotype < 0.85:
        writer.condition(pid, ICD10, "E11.42", status, _day(800), "Type 2 DM with diabetic polyneuropathy")
    else:
        writer.condition(pid, SNOMED, "368581000119106", status, _day(relapse_offset), "Neuropathy due to type 2 diabetes mellitus")
    had_ivig = phenotype < 0.5 and rng.random() < 0.7
    if had_ivig:  # a first IVIG course, with pain scores around it
        course_end = rng.randint(200, 600)
        dose = round(weight * rng.choice([0.4, 0.4, 0.4, 0.3, 0.45]), 1)
        writer.ivig_course(pid, course_end + 4, dose, rng.choice([5, 5, 5, 4]))
        baseline = rng.randint(6, 10)
        writer.observation(pid, LOINC, "72514-3", baseline, "{score}", _day(course_end + 5), "Pain severity")
        after = rng.choice([round(baseline * 0.5), round(baseline * 0.7), baseline - 1, baseline])
        writer.observation(pid, LOINC, "72514-3", after, "{score}", _day(course_end - rng.randint(5, 90)), "Pain severity")
        if rng.random() < 0.5:
            writer.observation(pid, LOINC, "72514-3", rng.randint(5, 10), "{score}", _day(rng.randint(3, 40)), "Pain severity")
        if rng.random() < 0.15:
            writer.ivig_course(pid, rng.randint(5, 20), dose)
        if writer.rare.random() < 0.2:  # a reaction to the course: repeat IVIG is off, plasma exchange on
            writer.add({"resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{pid}"},
                        "code": {"text": "Immune globulin"}, "recordedDate": _day(course_end)})
    elif rng.random() < 0.6:
        writer.observation(pid, LOINC, "72514-3", rng.randint(0, 10), "{score}", _day(rng.randint(1, 60)), "Pain severity")
    if 0.5 <= phenotype < 0.85 and writer.rare.random() < 0.05:  # IVIG given after a symmetric diagnosis
        writer.ivig_course(pid, writer.rare.randint(10, 300), round(weight * 0.4, 1))
    if writer.rare.random() < 0.05:
        writer.observation(pid, PROJECT, "localized-pain", True, None, _day(writer.rare.randint(1, 60)), "Localized pain")
    for drug in rng.sample(list(DRUGS), k=rng.choice([0, 1, 1, 2])):
        writer.medication(pid, drug, rng.choice(DRUGS[drug][2]), _day(rng.choice([3, 7, 8, 20, 40, 200])),
                          rng.choice(["active", "active", "active", "stopped"]))
    if rng.random() < 0.03:  # data errors an export carries
        writer.observation(pid, LOINC, "29463-7", rng.choice([0, -5, 900]), "kg", _day(2), "Body Weight")
    if rng.random() < 0.03:
        writer.observation(pid, LOINC, "4548-4", 64, "mmol/mol", _day(3), "HbA1c")
    if rng.random() < 0.1:
        writer.add({"resourceType": "Procedure", "status": "completed", "subject": {"reference": f"Patient/{pid}"},
                    "code": {"text": "10-g monofilament foot examination"}, "performedDateTime": _day(rng.randint(30, 500))})
    if writer.history:
        history(writer, pid, weight, creatinine, had_ivig)


def history(writer: Writer, pid: str, weight: float, creatinine: float, had_ivig: bool) -> None:
    """The --rich patient's earlier records (a stream of its own): measurements over time, earlier IVIG
    courses of five infusions each with a pain score before and after, earlier medication changes."""
    rng = writer.history
    for _ in range(rng.randint(1, 3)):
        writer.observation(pid, LOINC, "72514-3", rng.randint(3, 10), "{score}", _day(rng.randint(100, 700)), "Pain severity")
    for _ in range(rng.randint(1, 2)):
        writer.observation(pid, LOINC, "29463-7", round(weight + rng.uniform(-4, 4), 1), "kg", _day(rng.randint(90, 700)), "Body Weight")
    for _ in range(rng.randint(1, 2)):
        writer.observation(pid, LOINC, "2160-0", round(creatinine * rng.uniform(0.85, 1.15), 2), "mg/dL",
                           _day(rng.randint(120, 700)), "Creatinine")
    if had_ivig:
        for course in range(rng.randint(1, 2)):
            end = 700 + 250 * course + rng.randint(0, 100)
            writer.ivig_course(pid, end + 4, round(weight * 0.4, 1))
            baseline = rng.randint(6, 10)
            writer.observation(pid, LOINC, "72514-3", baseline, "{score}", _day(end + 5), "Pain severity")
            writer.observation(pid, LOINC, "72514-3", round(baseline * 0.5), "{score}", _day(end - 30), "Pain severity")
    for drug in rng.sample(["pregabalin", "gabapentin", "duloxetine", "amitriptyline"], k=rng.randint(1, 2)):
        writer.medication(pid, drug, rng.choice(DRUGS[drug][2]), _day(rng.randint(250, 900)), "stopped")


def data_errors(writer: Writer, pid: str, record: dict) -> None:
    """At most a few of the rarer data errors, each in about one patient in a hundred."""
    rare = writer.rare
    if rare.random() < 0.01 and "birthDate" in record:  # before the patient was born
        born = dt.date.fromisoformat(record["birthDate"])
        writer.observation(pid, LOINC, "4548-4", 6.8, "%", (born - dt.timedelta(days=400)).isoformat(), "HbA1c")
    if rare.random() < 0.01:
        writer.observation(pid, LOINC, "72514-3", 6, "{score}", _day(-rare.randint(1, 30)), "Pain severity")
    if rare.random() < 0.01:
        writer.observation(pid, LOINC, "4548-4", 7.4, "%", "2026-02-30", "HbA1c")  # no 30 February
    if rare.random() < 0.01:
        writer.observation(pid, LOINC, "4548-4", 7.0, "%", _day(5), "HbA1c")["valueQuantity"]["value"] = "7,2"
    if rare.random() < 0.01:
        del writer.observation(pid, LOINC, "29463-7", 70, "kg", _day(5), "Body Weight")["effectiveDateTime"]
    if rare.random() < 0.01:
        del writer.observation(pid, LOINC, "4548-4", 7.0, "%", _day(5), "HbA1c")["valueQuantity"]
    if rare.random() < 0.01:
        del writer.medication(pid, "pregabalin", 150, _day(rare.randint(1, 100)))["dosageInstruction"]


def generate(count: int, folder: Path, seed: int = 7, rich: bool = False) -> Path:
    rng = random.Random(seed)
    writer = Writer(rng, random.Random(seed * 1_000_003 + 1), random.Random(seed * 1_000_003 + 2) if rich else None)
    folder.mkdir(parents=True, exist_ok=True)
    handles = {}
    try:
        for index in range(count):
            patient(writer, index)
            for kind, items in writer.resources.items():
                if kind not in handles:
                    handles[kind] = open(folder / f"{kind}.ndjson", "w")
                handles[kind].writelines(json.dumps(item, separators=(",", ":")) + "\n" for item in items)
            writer.resources.clear()
    finally:
        for handle in handles.values():
            handle.close()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int)
    parser.add_argument("output", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rich", action="store_true", help="richer patients: about 90 triples each instead of 47")
    args = parser.parse_args()
    generate(args.count, args.output, args.seed, args.rich)


if __name__ == "__main__":
    main()
