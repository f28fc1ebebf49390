"""Patient identity and reading (issue 14, ../shared/spec/fhir-input.md "Patients" and "Files"): one
resolution of a reference to a patient on every path, records scoped to their patient, nothing lost in
silence, work bounded by the input, files of every delivered shape, and both engines seeing the same
literals. The invariance property test at the end runs a generated population every way it can be cut."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rdflib
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from neuropathy_kg import NKG, batch, fhir, ndjson, pipeline
from neuropathy_kg.load import InputError, read_patients
from neuropathy_kg.model import one_line, printable
from test_cli import AS_OF, EXAMPLES, invoke

sys.path.insert(0, str(ROOT / "bench"))
from synthetic import generate  # noqa: E402

DAY = dt.date(2026, 11, 24)
LOINC, ICD10, ATC = "http://loinc.org", "http://hl7.org/fhir/sid/icd-10-cm", "http://www.whocc.no/atc"
GOOD = EXAMPLES / "04-hepatic-disease.ttl"  # one patient, "dmitri"


def patient(pid: str, birth: str = "1950-01-01", sex: str = "male", **extra) -> dict:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": sex, **extra}


def observation(rid: str, subject: dict | str, code: str, value, unit: str, day: str = "2026-10-01") -> dict:
    subject = {"reference": f"Patient/{subject}"} if isinstance(subject, str) else subject
    return {"resourceType": "Observation", "id": rid, "status": "final", "subject": subject,
            "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": day,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


def neuropathy(pid: str, rid: str = "c1") -> dict:
    return {"resourceType": "Condition", "id": rid, "subject": {"reference": f"Patient/{pid}"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": ICD10, "code": "E11.42"}]}, "recordedDate": "2025-01-01"}


def ivig(rid: str, pid: str, day: str, grams: float = 28, **extra) -> dict:
    resource = {"resourceType": "MedicationAdministration", "id": rid, "status": "completed", "subject": {"reference": f"Patient/{pid}"},
                "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "J06BA02", "display": "immunoglobulins, normal human"}]},
                "effectiveDateTime": day, "dosage": {"dose": {"value": grams, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}}}
    resource.update(extra)
    return resource


def write(path: Path, resources: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in resources))
    return path


def graph_of(patients, pid: str) -> rdflib.Graph:
    return next(p for p in patients if p.id == pid).graph


def by_patient(document: dict) -> dict:
    return {p["patient"]: p for p in document["patients"]}


def weights(graph: rdflib.Graph) -> list[float]:
    return sorted(float(graph.value(r, NKG.value)) for r in graph.subjects(NKG.code, NKG["body-weight"]))


# ---------------------------------------------------------------- records scoped to their patient

def two_patients_with_the_same_record_ids() -> list[dict]:
    return [patient("a", "1950-01-01"), patient("b", "1980-01-01", "female"),
            observation("1", "a", "29463-7", 60, "kg"), observation("1", "b", "29463-7", 110, "kg"),
            observation("2", "a", "2160-0", 1.5, "mg/dL"), observation("2", "b", "2160-0", 0.8, "mg/dL"),
            neuropathy("a"), neuropathy("b")]


def test_two_patients_with_observation_1_never_mix(tmp_path):
    export = write(tmp_path / "export.ndjson", two_patients_with_the_same_record_ids())
    patients, errors = read_patients([str(export)])
    assert not errors
    assert weights(graph_of(patients, "a")) == [60.0] and weights(graph_of(patients, "b")) == [110.0]
    together = by_patient(pipeline.recommend(patients, DAY))
    for pid in ("a", "b"):
        alone = write(tmp_path / f"{pid}.ndjson", [r for r in two_patients_with_the_same_record_ids()
                                                  if r.get("id") == pid or r.get("subject", {}).get("reference") == f"Patient/{pid}"])
        assert by_patient(pipeline.recommend(read_patients([str(alone)])[0], DAY))[pid] == together[pid]
    assert together["a"]["facts"]["weightKg"] == 60 and together["b"]["facts"]["weightKg"] == 110
    assert together["a"]["facts"]["renalBand"] == "30-59" and together["b"]["facts"]["renalBand"] == ">=60"


def test_two_patients_in_two_files_and_through_buckets_never_mix(tmp_path, monkeypatch):
    resources = two_patients_with_the_same_record_ids()
    write(tmp_path / "one.ndjson", resources[::2])
    write(tmp_path / "two.ndjson", resources[1::2])
    monkeypatch.setattr(ndjson, "BUCKET_BYTES", 200)
    found = [p for b in batch.batches([str(tmp_path)], 10) for p in b.patients]
    assert sorted(p.id for p in found) == ["a", "b"]
    assert weights(graph_of(found, "a")) == [60.0] and weights(graph_of(found, "b")) == [110.0]


def test_conflicting_patient_resources_reach_the_store_with_both_values(tmp_path):
    """Not resolved in Python: the fact stage sees both values (data-conflicting-patient-records)."""
    export = write(tmp_path / "export.ndjson", [patient("a", "1950-01-01", "male"), patient("a", "1990-06-01", "female"), neuropathy("a")])
    for found in (read_patients([str(export)])[0], [p for b in batch.batches([str(export)], 10) for p in b.patients]):
        assert [p.id for p in found] == ["a"]
        graph = found[0].graph
        assert sorted(str(d) for d in graph.objects(found[0].iri, NKG.birthDate)) == ["1950-01-01", "1990-06-01"]
        assert sorted(str(s) for s in graph.objects(found[0].iri, NKG.sex)) == ["female", "male"]


def courses(graph: rdflib.Graph) -> list[tuple[str, str, int, float]]:
    return sorted((str(graph.value(c, NKG.startDate)), str(graph.value(c, NKG.endDate)), int(graph.value(c, NKG.infusionDays)),
                   float(graph.value(c, NKG.dailyDose))) for c in graph.subjects(rdflib.RDF.type, NKG.IvigCourse))


def test_the_same_resource_twice_counts_once(tmp_path):
    """Five IVIG administrations present twice (in one file, and again in a second) are one course of
    five days at the dose given, not a double dose; an Observation twice is one record."""
    days = [f"2026-09-0{k}" for k in range(1, 6)]
    once = [patient("a"), neuropathy("a"), *[ivig(f"m{k}", "a", day) for k, day in enumerate(days)], observation("w", "a", "29463-7", 70, "kg")]
    write(tmp_path / "once.ndjson", once)
    single = graph_of(read_patients([str(tmp_path / "once.ndjson")])[0], "a")
    assert courses(single) == [("2026-09-01", "2026-09-05", 5, 28.0)]
    (tmp_path / "twice").mkdir()
    write(tmp_path / "twice" / "a.ndjson", once + once)
    write(tmp_path / "twice" / "b.ndjson", once)
    for found in (read_patients([str(tmp_path / "twice")])[0], [p for b in batch.batches([str(tmp_path / "twice")], 10) for p in b.patients]):
        graph = graph_of(found, "a")
        assert courses(graph) == courses(single)
        assert weights(graph) == [70.0]
        assert len(graph) == len(single)


# ---------------------------------------------------------------- one resolution of a reference

SPELLINGS = ["Patient/{}", "Patient/{}/_history/2", "https://fhir.example.org/r4/Patient/{}", "identifier"]


def spelled(pid: str, how: str) -> dict:
    if how == "identifier":
        return {"identifier": {"system": "urn:test:mrn", "value": f"mrn-{pid}"}}
    return {"reference": how.format(pid)}


def test_every_spelling_of_a_reference_names_one_patient(tmp_path, monkeypatch):
    resources = [patient("x", identifier=[{"system": "urn:test:mrn", "value": "mrn-x"}])]
    resources += [observation(f"o{k}", spelled("x", how), "29463-7", 70 + k, "kg", f"2026-10-0{k + 1}") for k, how in enumerate(SPELLINGS)]
    export = write(tmp_path / "export.ndjson", resources)
    monkeypatch.setattr(ndjson, "BUCKET_BYTES", 100)  # many buckets: the identifier line is resolved after the pass
    for found in (read_patients([str(export)])[0], [p for b in batch.batches([str(export)], 10) for p in b.patients]):
        assert [p.id for p in found] == ["x"]
        assert weights(found[0].graph) == [70.0, 71.0, 72.0, 73.0]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:5f1c", "resource": resources[0]},
        *({"resource": r} for r in resources[1:]),
        {"resource": observation("o9", {"reference": "urn:uuid:5f1c"}, "29463-7", 79, "kg", "2026-10-09")}]}
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    found, errors = read_patients([str(tmp_path / "bundle.json")])
    assert not errors and [p.id for p in found] == ["x"]
    assert weights(found[0].graph) == [70.0, 71.0, 72.0, 73.0, 79.0]


def test_a_reference_that_names_no_patient_is_reported_not_made_up(tmp_path, monkeypatch):
    export = write(tmp_path / "export.ndjson", [
        patient("x", identifier=[{"system": "urn:test:mrn", "value": "mrn-x"}]), patient("y", identifier=[{"system": "urn:test:mrn", "value": "shared"}]),
        patient("z", identifier=[{"system": "urn:test:mrn", "value": "shared"}]),
        observation("o1", {"identifier": {"system": "urn:test:mrn", "value": "nobody"}}, "29463-7", 70, "kg"),
        observation("o2", {"reference": "urn:uuid:1234"}, "29463-7", 70, "kg"),
        observation("o3", {"reference": "Group/g1"}, "29463-7", 70, "kg"),
        observation("o4", {"identifier": {"system": "urn:test:mrn", "value": "shared"}}, "29463-7", 70, "kg"),
        {k: v for k, v in observation("o5", "x", "29463-7", 70, "kg").items() if k != "subject"},
    ])
    expected = [f"{export}:{line}: Observation/o{line - 3} " for line in range(4, 9)]
    monkeypatch.setattr(ndjson, "BUCKET_BYTES", 100)
    for found, errors in (read_patients([str(export)]), _batched([str(export)])):
        assert sorted(p.id for p in found) == ["x", "y", "z"]
        assert all(weights(p.graph) == [] for p in found if p.id != "x") and all(not list(p.graph.subjects(NKG.code, None)) for p in found)
        messages = sorted(str(e) for e in errors)
        assert len(messages) == 5 and all(m.startswith(e) for m, e in zip(messages, expected)), messages
        assert "names no Patient" in messages[0] and "names 2 different Patients" in messages[3] and "names no patient" in messages[4]


def _batched(paths):
    found, errors = [], []
    for item in batch.batches(paths, 10):
        found += item.patients
        errors += item.errors
    return found, errors


def test_converter_handlers_are_the_patient_resource_types():
    handled = {name[1:] for name in dir(fhir._Converter) if name[1:2].isupper() and name.startswith("_")} - {"Patient"}
    assert handled == set(ndjson.PATIENT_RESOURCE_TYPES)


def test_public_ndjson_functions():
    assert ndjson.reference_target("Patient/p1/_history/3") == ndjson.Target("id", "p1")
    assert ndjson.reference_target("https://x/fhir/Patient/p1") == ndjson.Target("id", "p1")
    assert ndjson.reference_target("urn:uuid:abc") == ndjson.Target("url", "urn:uuid:abc")
    assert ndjson.reference_target("Group/1") is None
    assert ndjson.line_key({"resourceType": "Observation", "patient": {"identifier": {"system": "s", "value": "v"}}}) == ndjson.Target("identifier", "s|v")
    assert ndjson.patient_identifiers(patient("p", identifier=[{"system": "s", "value": "v"}, {"value": "w"}])) == ["s|v", "|w"]
    assert ndjson.bucket_of("p1", 8) == ndjson.bucket_of("p1", 8) < 8


# ---------------------------------------------------------------- no silent loss, bounded work

def test_unreadable_resources_are_skipped_alone_with_file_and_line(tmp_path):
    """A date 9999-12-31 plus the course's days (OverflowError), a 400-digit integer, a broken line: each
    is reported with file:line, or read as a malformed value; every other patient and record is kept."""
    lines = [patient("a"), neuropathy("a"), observation("w", "a", "29463-7", 70, "kg"),
             {"resourceType": "MedicationStatement", "id": "s1", "status": "completed", "subject": {"reference": "Patient/a"},
              "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "J06BA02"}]}, "effectiveDateTime": "9999-12-31"},
             '{"resourceType": "Observation", "id": "big", "subject": {"reference": "Patient/a"}, "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, '
             '"effectiveDateTime": "2026-10-02", "valueQuantity": {"value": ' + "9" * 400 + ', "unit": "kg"}}',
             '{"resourceType": "Observation", "id": ',
             patient("b"), neuropathy("b"), observation("w", "b", "29463-7", 80, "kg")]
    export = write(tmp_path / "export.ndjson", lines)
    result = invoke("validate", *AS_OF, "--format", "json", str(export))
    assert result.exit_code == 2, result.output
    stderr = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(line.startswith(f"neuropathy-kg: {export}:4: MedicationStatement/s1 could not be read") for line in stderr), stderr
    assert any(line.startswith(f"neuropathy-kg: {export}:6: not valid JSON") for line in stderr), stderr
    document = json.loads(result.stdout)
    assert sorted(p["patient"] for p in document["patients"]) == ["a", "b"]
    assert document["summary"]["failedInputs"] == 2
    findings = {f["id"] for p in document["patients"] if p["patient"] == "a" for f in p["findings"]}
    assert "data-malformed-value" in findings, "the 400-digit weight is no number to either engine"


def test_an_absurd_administration_period_is_bounded(tmp_path):
    export = write(tmp_path / "export.ndjson", [patient("a"), neuropathy("a"),
                                                ivig("m1", "a", None, effectivePeriod={"start": "0001-01-01", "end": "9999-12-31"}),
                                                ivig("m2", "a", "2026-09-01")])
    started = time.monotonic()
    found, errors = read_patients([str(export)])
    assert time.monotonic() - started < 5
    assert [str(e) for e in errors] == [f"{export}:3: MedicationAdministration/m1: an administration period of 3652059 days is not plausible: skipped"]
    assert courses(found[0].graph) == [("2026-09-01", "2026-09-01", 1, 28.0)]


def test_lines_naming_no_patient_are_not_copied_into_buckets(tmp_path, monkeypatch):
    """Practitioner lines go nowhere; a Medication reaches only the buckets whose lines reference it, once."""
    medication = {"resourceType": "Medication", "id": "med1", "code": {"coding": [{"system": ATC, "code": "J06BA02"}]}}
    request = lambda pid: {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "intent": "order",  # noqa: E731
                           "subject": {"reference": f"Patient/{pid}"}, "medicationReference": {"reference": "Medication/med1"}}
    lines = [medication, medication, *({"resourceType": "Practitioner", "id": f"dr{k}"} for k in range(50)),
             *(patient(f"p{k}") for k in range(40)), request("p3"), request("p17")]
    export = write(tmp_path / "export.ndjson", lines)
    monkeypatch.setattr(ndjson, "BUCKET_BYTES", 300)
    spool = tmp_path / "spool"
    spool.mkdir()
    buckets = [b for b in ndjson.spool([(str(export), export)], spool) if isinstance(b, ndjson.Bucket)]
    assert len(buckets) > 4
    contents = [b"".join(path.read_bytes() for path in b.files) for b in buckets]
    assert not any(b"Practitioner" in text for text in contents)
    wanted = {ndjson.bucket_of("p3", ndjson.bucket_count(export.stat().st_size)), ndjson.bucket_of("p17", ndjson.bucket_count(export.stat().st_size))}
    holding = [text.count(b'"Medication"') for text in contents]
    assert sum(holding) == len(wanted) and max(holding) == 1


# ---------------------------------------------------------------- files

def test_gzip_files_are_read_like_plain_ones(tmp_path):
    resources = two_patients_with_the_same_record_ids()
    (tmp_path / "plain").mkdir()
    plain = write(tmp_path / "plain" / "export.ndjson", resources)
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "export.ndjson.gz").write_bytes(gzip.compress(plain.read_bytes()))
    bundle = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}).encode()
    (tmp_path / "gz" / "bundle.json.gz").write_bytes(gzip.compress(bundle))
    expected = pipeline.recommend(read_patients([str(plain)])[0], DAY)
    for paths in ([str(tmp_path / "gz" / "export.ndjson.gz")], [str(tmp_path / "gz" / "bundle.json.gz")]):
        found, errors = read_patients(paths)
        assert not errors and pipeline.recommend(found, DAY) == expected
    found, errors = _batched([str(tmp_path / "gz" / "export.ndjson.gz")])
    assert not errors and pipeline.recommend(sorted(found, key=lambda p: p.id), DAY) == expected
    result = invoke("recommend", *AS_OF, "--format", "json", str(tmp_path / "gz"))
    assert result.exit_code == 0, result.stderr


def test_skipped_files_in_a_folder_are_named(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "export.ndjson", [patient("a"), neuropathy("a")])
    (folder / "notes.txt").write_text("not patient data")
    (folder / "gone.ndjson").symlink_to(tmp_path / "missing.ndjson")
    (folder / "loop").symlink_to(folder)  # a symbolic link back up: read once, the loop reported
    linked = tmp_path / "elsewhere"
    linked.mkdir()
    write(linked / "more.ndjson", [patient("b"), neuropathy("b")])
    (folder / "linked").symlink_to(linked)  # a symbolic link to another folder: followed
    result = invoke("recommend", *AS_OF, "--format", "json", str(folder))
    assert result.exit_code == 2
    stderr = [line for line in result.stderr.splitlines() if line.strip()]
    assert sorted(stderr) == sorted([f"neuropathy-kg: {folder / 'gone.ndjson'}: broken symbolic link: skipped",
                                     f"neuropathy-kg: {folder / 'loop'}: symbolic link to a folder already read (a loop, or read twice): skipped",
                                     f"neuropathy-kg: {folder / 'notes.txt'}: not a patient file (extension not read: .ttl .nt .jsonld .rdf .trig .nq .json .ndjson, or .json.gz .ndjson.gz): skipped"])
    assert sorted(p["patient"] for p in json.loads(result.stdout)["patients"]) == ["a", "b"]


def test_a_path_that_does_not_exist_does_not_stop_the_others(tmp_path):
    for command in (["recommend", "--format", "json"], ["recommend", "--jsonl"], ["validate", "--format", "json"]):
        result = invoke(*command, *AS_OF, str(tmp_path / "missing.ndjson"), str(GOOD))
        assert result.exit_code == 2, result.output
        stderr = [line for line in result.stderr.splitlines() if line.strip()]
        assert stderr[0] == f"neuropathy-kg: {tmp_path / 'missing.ndjson'}: no such file or folder"
        assert stderr[1:] in ([], ["neuropathy-kg: 1 patient processed, 0 patients failed, 1 input or line skipped as unreadable"])
        assert "dmitri" in result.stdout


@pytest.mark.parametrize("inside", [False, True])
def test_a_fifo_is_refused_at_once(tmp_path, inside):
    fifo = tmp_path / "in" / "pipe.ndjson"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "neuropathy_kg.cli", "recommend", *AS_OF, "--format", "json",
                          str(fifo.parent if inside else fifo), str(GOOD)], capture_output=True, timeout=60, text=True)
    assert time.monotonic() - started < 30
    assert run.returncode == 2
    expected = [f"neuropathy-kg: {fifo}: not a regular file but a FIFO (named pipe): refused without opening it (use - for standard input)"]
    if inside:  # and the folder, whose one file was refused, says it held no patient file
        expected.append(f"neuropathy-kg: {fifo.parent}: folder holds no patient files (.ttl .nt .jsonld .rdf .trig .nq .json .ndjson .json.gz .ndjson.gz)")
    assert run.stderr.strip().splitlines() == expected
    assert "dmitri" in run.stdout


def test_rdf_xml_with_entities_is_refused_by_defusedxml(tmp_path):
    hostile = tmp_path / "x.rdf"
    hostile.write_text('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                       '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="urn:x">&e;</rdf:Description></rdf:RDF>')
    found, errors = read_patients([str(hostile)])
    assert not found and [str(e) for e in errors] == [f"{hostile}: RDF/XML with a DOCTYPE or entity declarations is refused (external entities and entity expansion are not processed)"]


@pytest.mark.parametrize("separator", ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_the_one_line_contract_escapes_every_line_separator(separator):
    error = InputError(f"file{separator}name", f"Observation/1{separator}2: bad")
    assert len(str(error).splitlines()) == 1 and separator not in str(error)
    assert len(one_line(ValueError(f"a{separator}b")).splitlines()) == 1
    assert printable(separator) == separator.encode("unicode_escape").decode()


# ---------------------------------------------------------------- both engines see the same literals

AWKWARD_NUMBERS = ["72.00000000000000000000000001", "NaN", "INF", "-INF", "-0", "-0.0", "1e400", "9" * 400,
                   "72.5", "0.000000000000000000001", "123456789012345678901234", "1.5e2"]
AWKWARD_DATES = ["0000-01-01", "10000-01-01", "-0001-01-01", "2026-02-30", "1960-01-15", "9999-12-31"]


def _turtle(weight: str, weight_type: str, birth: str) -> str:
    return f"""@prefix nkg: <https://w3id.org/neuropathy-kg/> . @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<urn:p:q> a nkg:Patient ; nkg:patientId "q" ; nkg:sex "male" ; nkg:birthDate "{birth}"^^xsd:date .
<urn:p:q/d> nkg:subject <urn:p:q> ; a nkg:ConditionRecord ; nkg:code nkg:diabetic-neuropathy ; nkg:clinicalStatus "active" .
<urn:p:q/w> nkg:subject <urn:p:q> ; a nkg:ObservationRecord ; nkg:code nkg:body-weight ; nkg:value "{weight}"^^xsd:{weight_type} ; nkg:unit "kg" ; nkg:date "2026-10-01"^^xsd:date .
<urn:p:q/c> nkg:subject <urn:p:q> ; a nkg:ObservationRecord ; nkg:code nkg:serum-creatinine ; nkg:value "{weight}"^^xsd:{weight_type} ; nkg:unit "mg/dL" ; nkg:date "2026-10-01"^^xsd:date .
"""


def _fhir(weight: str, birth: str) -> bytes:
    lines = [f'{{"resourceType": "Patient", "id": "q", "gender": "male", "birthDate": "{birth}"}}', json.dumps(neuropathy("q")),
             json.dumps(observation("w", "q", "29463-7", 0, "kg")).replace('"value": 0', f'"value": {weight}'),
             json.dumps(observation("c", "q", "2160-0", 0, "mg/dL")).replace('"value": 0', f'"value": {weight}')]
    return "\n".join(lines).encode()


def _both_engines(patients) -> None:
    assert patients, "the input was read"
    for stage in (lambda e: pipeline.recommend(patients, DAY, e), lambda e: pipeline.validate(patients, DAY, e)):
        assert json.dumps(stage("rdflib"), sort_keys=True) == json.dumps(stage("oxigraph"), sort_keys=True)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(weight=st.one_of(st.sampled_from(AWKWARD_NUMBERS), st.decimals(allow_nan=False, places=None).map(str)),
       weight_type=st.sampled_from(["decimal", "double", "integer", "float"]), birth=st.sampled_from(AWKWARD_DATES))
@example(weight="72.00000000000000000000000001", weight_type="decimal", birth="1960-01-15")  # issue 14: Oxigraph malformed, rdflib a dose
@example(weight="NaN", weight_type="decimal", birth="1960-01-15")  # rdflib raised, and held NaN < 20
@example(weight="NaN", weight_type="double", birth="0000-01-01")
@example(weight="INF", weight_type="double", birth="10000-01-01")
@example(weight="9" * 400, weight_type="integer", birth="1960-01-15")
@example(weight="0.000000000000000000001", weight_type="float", birth="1960-01-15")  # xsd:float: 32 bits in Oxigraph
@example(weight="-0", weight_type="decimal", birth="1960-01-15")
def test_both_engines_agree_on_every_literal_the_readers_produce(tmp_path, weight, weight_type, birth):
    turtle = tmp_path / "q.ttl"
    turtle.write_text(_turtle(weight, weight_type, birth))
    _both_engines(read_patients([str(turtle)])[0])
    if weight in ("NaN", "Infinity", "-Infinity") or all(c in "0123456789.-eE+" for c in weight):  # JSON (Python's accepts NaN)
        try:
            json.loads(weight)
        except ValueError:
            return
        export = tmp_path / "q.ndjson"
        export.write_bytes(_fhir(weight, birth))
        _both_engines(read_patients([str(export)])[0])


# ---------------------------------------------------------------- invariance

@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """A generated population whose Patients carry an identifier (so that references may name them by it),
    and its per-patient recommend + validate results read the simplest way (one file set, one chunk)."""
    folder = generate(24, tmp_path_factory.mktemp("invariance") / "export", seed=5)
    lines: list[dict] = []
    for path in sorted(folder.iterdir()):
        for line in path.read_text().splitlines():
            resource = json.loads(line)
            if resource["resourceType"] == "Patient":
                resource["identifier"] = [{"system": "urn:test:mrn", "value": f"mrn-{resource['id']}"}]
            lines.append(resource)
    base = tmp_path_factory.mktemp("base")
    write(base / "export.ndjson", lines)
    patients, errors = read_patients([str(base)])
    assert not errors and len(patients) == 24
    return lines, _results(pipeline.assess_chunk(patients, DAY))


def _results(found: list[dict]) -> dict[str, dict]:
    return {r["recommend"]["patient"]: r for r in found}


def _respell(resource: dict, how: str) -> dict:
    for key in ("subject", "patient"):
        reference = resource.get(key)
        if isinstance(reference, dict) and str(reference.get("reference", "")).startswith("Patient/"):
            pid = reference["reference"].split("/", 1)[1]
            return {**resource, key: spelled(pid, how)}
    return resource


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32), files=st.integers(1, 4), bucket_bytes=st.sampled_from([500, 5_000, 50_000, 4_000_000]),
       chunk=st.integers(1, 30), jobs=st.sampled_from([1, 1, 2]), alone=st.integers(0, 23), bundles=st.integers(0, 4))
@example(seed=7, files=2, bucket_bytes=500, chunk=5, jobs=2, alone=3, bundles=1)  # a Bundle and an NDJSON file, workers
@example(seed=8, files=3, bucket_bytes=5_000, chunk=30, jobs=1, alone=0, bundles=3)  # Bundles only
def test_every_patient_output_is_the_same_however_the_export_is_cut(population, tmp_path_factory, monkeypatch,
                                                                    seed, files, bucket_bytes, chunk, jobs, alone, bundles):
    """Whatever the bucket size, chunk size, --jobs, order of lines and files, split into files (NDJSON
    files or Bundles: the first ``bundles`` parts are written as Bundles, so a patient is split over
    Bundles, or Bundles and NDJSON, as well) and spelling of references (Patient/X,
    Patient/X/_history/2, an absolute URL, an identifier), and whether a patient is run alone or in the
    population, each patient's recommend and validate output is the same."""
    lines, expected = population
    rng = random.Random(seed)
    shuffled = [_respell(r, rng.choice(SPELLINGS)) for r in lines]
    rng.shuffle(shuffled)
    folder = tmp_path_factory.mktemp("cut")
    parts: list[list[dict]] = [[] for _ in range(files)]
    for resource in shuffled:
        parts[rng.randrange(files)].append(resource)
    for k, part in enumerate(parts):
        if k < bundles and part:
            (folder / f"part-{k}.json").write_text(bundle_of(part))
        else:
            write(folder / f"part-{k}.ndjson", part)
    monkeypatch.setattr(ndjson, "BUCKET_BYTES", bucket_bytes)
    monkeypatch.setattr(ndjson, "MIN_BUCKET_BYTES", min(bucket_bytes, ndjson.MIN_BUCKET_BYTES))
    errors: list[InputError] = []
    results = [r for chunk_results in batch.run([str(folder)], chunk, lambda ps: pipeline.assess_chunk(ps, DAY), jobs, errors.extend)
               for r in chunk_results]
    assert not errors
    assert len(results) == len(expected), "every patient once, none split in two"
    assert _results(results) == expected
    pid = sorted(expected)[alone]
    own = folder / "alone"
    own.mkdir()
    mine = [r for r in lines if r.get("id") == pid and r["resourceType"] == "Patient" or
            (r.get("subject") or r.get("patient") or {}).get("reference") == f"Patient/{pid}"]
    write(own / "export.ndjson", [_respell(r, rng.choice(SPELLINGS)) for r in mine])
    patients, errors = read_patients([str(own)])
    assert not errors and _results(pipeline.assess_chunk(patients, DAY)) == {pid: expected[pid]}


def test_a_transaction_patient_without_id_is_named_by_its_entry_uuid(tmp_path):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:7d3e", "resource": {k: v for k, v in patient("ignored").items() if k != "id"}},
        {"fullUrl": "urn:uuid:0b1a", "resource": observation("w", {"reference": "urn:uuid:7d3e"}, "29463-7", 70, "kg")}]}
    (tmp_path / "t.json").write_text(json.dumps(bundle))
    found, errors = read_patients([str(tmp_path / "t.json")])
    assert not errors and [p.id for p in found] == ["7d3e"] and weights(found[0].graph) == [70.0]


def test_a_file_that_is_not_patient_data_is_named_but_no_failure(tmp_path):
    """notes.txt or .DS_Store beside an export is named on standard error (never dropped in silence) but is
    no failure: exit 0, summary without failed inputs. A broken link beside it still is one (exit 2)."""
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "export.ndjson", [patient("a"), neuropathy("a")])
    (folder / "notes.txt").write_text("not patient data")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    result = invoke("recommend", *AS_OF, "--format", "json", str(folder))
    assert result.exit_code == 0, result.stderr
    stderr = [line for line in result.stderr.splitlines() if line.strip()]
    assert sorted(stderr) == sorted(f"neuropathy-kg: {folder / name}: not a patient file (extension not read: .ttl .nt "
                                    ".jsonld .rdf .trig .nq .json .ndjson, or .json.gz .ndjson.gz): skipped"
                                    for name in ("notes.txt", ".DS_Store"))
    assert json.loads(result.stdout)["summary"]["failedInputs"] == 0
    (folder / "gone.ndjson").symlink_to(tmp_path / "missing.ndjson")
    assert invoke("recommend", *AS_OF, "--format", "json", str(folder)).exit_code == 2


def test_a_versioned_or_absolute_medication_reference_finds_its_medication(tmp_path):
    """The spooler sends a Medication to the buckets whose lines name it in any spelling; the converter
    must then find it by the same key (else the drug is silently unknown)."""
    medication = {"resourceType": "Medication", "id": "m1", "code": {"coding": [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "187832", "display": "pregabalin"}]}}
    for spelling in ("Medication/m1/_history/3", "https://ehr.example/fhir/Medication/m1"):
        request = {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "intent": "order",
                   "subject": {"reference": "Patient/a"}, "medicationReference": {"reference": spelling},
                   "authoredOn": "2026-10-01"}
        path = tmp_path / "export.ndjson"
        write(path, [patient("a"), neuropathy("a"), medication, request])
        result = invoke("recommend", *AS_OF, "--format", "json", str(path))
        assert json.loads(result.stdout)["patients"][0]["facts"]["onFirstLineAgent"] is True, spelling


# ---------------------------------------------------------------- the same resource twice with different content (review 1, D2-D4)

def responder(pid: str = "A") -> list[dict]:
    """A previous IVIG responder in relapse: repeat IVIG at 0.4 g/kg of the weight read."""
    ref = {"reference": f"Patient/{pid}"}
    condition = {"resourceType": "Condition", "subject": ref, "clinicalStatus": {"coding": [{"code": "active"}]}}
    return [patient(pid, "1960-01-15"),
            {**condition, "id": "dm", "code": {"coding": [{"system": ICD10, "code": "E11.9"}]}, "recordedDate": "2005-01-01"},
            {**condition, "id": "neu", "code": {"coding": [{"system": ICD10, "code": "E11.44"}]},
             "clinicalStatus": {"coding": [{"code": "relapse"}]}, "recordedDate": "2026-11-10"},
            *[ivig(f"iv{k}", pid, f"2025-03-0{k + 3}", 30) for k in range(5)],
            {"resourceType": "Observation", "id": "resp", "status": "final", "subject": ref, "effectiveDateTime": "2025-04-01",
             "code": {"coding": [{"system": "https://w3id.org/neuropathy-kg/CodeSystem/concepts", "code": "ivig-response"}]}, "valueBoolean": True},
            observation("cr", pid, "2160-0", 1.0, "mg/dL", "2026-11-10"), observation("a1c", pid, "4548-4", 6.8, "%", "2026-11-01")]


def _read_both_ways(tmp_path: Path, resources: list[dict], name: str):
    """(patients, error lines) of the resources as NDJSON and as a Bundle."""
    out = []
    write(tmp_path / f"{name}.ndjson", resources)
    out.append(read_patients([str(tmp_path / f"{name}.ndjson")]))
    (tmp_path / f"{name}.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                                       "entry": [{"resource": r} for r in resources]}))
    out.append(read_patients([str(tmp_path / f"{name}.json")]))
    return [(patients, [one_line(e) for e in errors]) for patients, errors in out]


def _repeat_ivig(document: dict) -> list[dict]:
    return [a for p in document["patients"] for a in p.get("actions", []) if a.get("id") == "repeat-ivig"]


def test_a_resource_twice_with_different_content_and_no_version_is_not_read(tmp_path):
    """Weight 75 kg and 100 kg as one Observation/w: no dose from either, in either order, on either engine,
    in NDJSON and in a Bundle; one line names the later copy."""
    documents = set()
    for order, (first, second) in enumerate(((75, 100), (100, 75))):
        resources = [*responder(), observation("w", "A", "29463-7", first, "kg", "2026-11-10"), observation("cr2", "A", "2160-0", 1.0, "mg/dL", "2026-11-10"),
                     observation("w", "A", "29463-7", second, "kg", "2026-11-10")]
        for patients, errors in _read_both_ways(tmp_path, resources, f"w{order}"):
            assert weights(graph_of(patients, "A")) == []
            assert len(errors) == 1 and "Observation/w appears 2 times for patient A with different content and no version to tell the latest: none is read" in errors[0]
            assert f"w{order}.ndjson:14:" in errors[0] or f"w{order}.json" in errors[0], "the later copy's line"
            for engine in ("rdflib", "oxigraph"):
                document = pipeline.recommend(patients, DAY, engine)
                assert not [a for a in _repeat_ivig(document) if "dailyAmount" in json.dumps(a)], "no IVIG dose from a contested weight"
                documents.add(json.dumps(document, sort_keys=True))
    assert len(documents) == 1, "the same output in both orders, both formats, both engines"
    spooled = [p for b in batch.batches([str(tmp_path / "w0.ndjson")], 10) for p in b.patients]
    assert weights(graph_of(spooled, "A")) == [], "the batch path (a patient's lines in one bucket) as well"


def test_identical_copies_count_once_silently_and_patients_are_exempt(tmp_path):
    resources = [*responder(), observation("w", "A", "29463-7", 75, "kg"), observation("w", "A", "29463-7", 75, "kg"),
                 patient("A", "1990-06-01", "female")]
    for patients, errors in _read_both_ways(tmp_path, resources, "same"):
        assert errors == [] and weights(graph_of(patients, "A")) == [75.0]
        graph = graph_of(patients, "A")
        assert len(set(graph.objects(None, NKG.birthDate))) == 2, "conflicting Patient resources reach the store (00-conflicting-patient-records.ru)"


@pytest.mark.parametrize("meta_old, meta_new", [
    ({"versionId": "1"}, {"versionId": "2"}),
    ({"versionId": "9", "lastUpdated": "2026-11-10T08:00:00Z"}, {"versionId": "10", "lastUpdated": "2026-11-09T08:00:00Z"}),  # numeric, not text
    ({"lastUpdated": "2026-11-10T08:00:00+02:00"}, {"lastUpdated": "2026-11-10T07:00:00Z"}),
])
def test_a_resource_twice_in_versions_is_read_in_its_latest(tmp_path, meta_old, meta_new):
    old = {**observation("w", "A", "29463-7", 100, "kg"), "meta": meta_old}
    new = {**observation("w", "A", "29463-7", 75, "kg"), "meta": meta_new}
    for order, pair in enumerate(([old, new], [new, old])):
        for patients, errors in _read_both_ways(tmp_path, [*responder(), *pair], f"v{order}"):
            assert errors == [] and weights(graph_of(patients, "A")) == [75.0]


def test_a_versionless_tie_reads_none(tmp_path):
    one = {**observation("w", "A", "29463-7", 100, "kg"), "meta": {"versionId": "3"}}
    other = {**observation("w", "A", "29463-7", 75, "kg"), "meta": {"versionId": "3"}}
    for patients, errors in _read_both_ways(tmp_path, [*responder(), one, other], "tie"):
        assert weights(graph_of(patients, "A")) == [] and len(errors) == 1


def test_an_administration_twice_with_different_doses(tmp_path):
    """IVIG iv0 at 30 g and again at 60 g: not the last one read (D3); with versions, the latest."""
    seen = set()
    for order in (0, 1):
        twice = [ivig("iv0", "A", "2025-03-03", 60)]
        resources = responder() + twice if order == 0 else twice + responder()
        for patients, errors in _read_both_ways(tmp_path, resources, f"a{order}"):
            assert len(errors) == 1 and "MedicationAdministration/iv0 appears 2 times" in errors[0]
            seen.add(tuple(courses(graph_of(patients, "A"))))
    assert seen == {(("2025-03-04", "2025-03-07", 4, 30.0),)}
    later = ivig("iv0", "A", "2025-03-03", 60, meta={"versionId": "2"})
    versioned = [r if r.get("id") != "iv0" else {**r, "meta": {"versionId": "1"}} for r in responder()]
    patients, errors = _read_both_ways(tmp_path, [later, *versioned], "a2")[0]
    assert errors == [] and courses(graph_of(patients, "A")) == [("2025-03-03", "2025-03-07", 5, 36.0)]


def test_a_condition_twice_relapse_and_remission(tmp_path):
    """Condition/neu as relapse and as remission, same date: neither is read, so no repeat IVIG from a
    contested relapse, in either order."""
    remission = {**responder()[2], "clinicalStatus": {"coding": [{"code": "remission"}]}}
    documents = set()
    for order in (0, 1):
        resources = [*responder(), observation("w", "A", "29463-7", 75, "kg")]
        resources = resources + [remission] if order == 0 else [remission] + resources
        for patients, errors in _read_both_ways(tmp_path, resources, f"c{order}"):
            assert len(errors) == 1 and "Condition/neu appears 2 times" in errors[0]
            document = pipeline.recommend(patients, DAY)
            assert _repeat_ivig(document) == []
            documents.add(json.dumps(document, sort_keys=True))
    assert len(documents) == 1


# ---------------------------------------------------------------- one export across Bundles and NDJSON files (review 1 D1)

def bundle_of(resources: list[dict], urls: dict[str, str] | None = None) -> str:
    """A collection Bundle of the resources; ``urls``: fullUrl by resource id."""
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {**({"fullUrl": urls[r["id"]]} if urls and r.get("id") in urls else {}), "resource": r} for r in resources]})


def _recommended(*args: str) -> tuple[int, str, list[dict]]:
    result = invoke("recommend", *AS_OF, "--format", "json", *args)
    return result.exit_code, result.stderr, json.loads(result.stdout)["patients"] if result.stdout else []


def test_a_patient_split_over_bundles_or_a_bundle_and_ndjson_is_one_patient(tmp_path):
    """Review 1 D1: A's resources over two Bundle files (or a folder of them, or a Bundle and an NDJSON
    file, in either order) gave two entries "A", each judged alone (no repeat IVIG, no weight). Now one A,
    the same as from one Bundle, on both engines and with --jobs 2 (Bundles written as export lines by the
    workers)."""
    resources = [*responder(), observation("w", "A", "29463-7", 75, "kg", "2026-11-10")]
    (tmp_path / "whole.json").write_text(bundle_of(resources))
    code, stderr, whole = _recommended(str(tmp_path / "whole.json"))
    assert code == 0 and stderr == "" and [p["patient"] for p in whole] == ["A"]
    assert [a["dose"]["dailyAmount"] for a in whole[0]["actions"] if a["id"] == "repeat-ivig"] == [30], "0.4 g/kg of 75 kg"
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "a-1.json").write_text(bundle_of(resources[:6]))
    (folder / "a-2.json").write_text(bundle_of(resources[6:]))
    write(tmp_path / "a-2.ndjson", resources[6:])
    cases = [(str(folder / "a-1.json"), str(folder / "a-2.json")), (str(folder),), (str(folder / "a-1.json"), str(tmp_path / "a-2.ndjson")),
             (str(tmp_path / "a-2.ndjson"), str(folder / "a-1.json")), (str(folder), "--jobs", "2")]
    for args in cases:
        code, stderr, found = _recommended(*args)
        assert (code, stderr) == (0, ""), args
        assert found == whole, f"one patient A, as from one Bundle: {args}"
    for engine in ("rdflib", "oxigraph"):
        assert _recommended("--engine", engine, str(folder))[2] == _recommended("--engine", engine, str(tmp_path / "whole.json"))[2]
    patients, errors = read_patients([str(folder / "a-1.json"), str(tmp_path / "a-2.ndjson")])  # query, reason, load
    assert not errors and [p.id for p in patients] == ["A"] and weights(patients[0].graph) == [75.0]


def test_an_identifier_reference_names_a_patient_of_another_bundle(tmp_path):
    """Review 1 D15 addendum: C's Patient in one Bundle, all C's resources in another naming C by
    identifier: 11 lines "identifier urn:mrn|C-1 names no Patient in the input" and C without data. Now
    resolved across the files (in NDJSON it was already)."""
    mrn = {"system": "urn:mrn", "value": "C-1"}
    records = [{**r, "subject": {"identifier": mrn}} for r in [*responder("C")[1:], observation("w", "C", "29463-7", 75, "kg", "2026-11-10")]]
    (tmp_path / "idC-1.json").write_text(bundle_of([patient("C", "1960-01-15", identifier=[mrn])]))
    (tmp_path / "idC-2.json").write_text(bundle_of(records))
    (tmp_path / "one.json").write_text(bundle_of([patient("C", "1960-01-15", identifier=[mrn]), *records]))
    code, stderr, found = _recommended(str(tmp_path / "idC-1.json"), str(tmp_path / "idC-2.json"))
    assert (code, stderr) == (0, "")
    assert found == _recommended(str(tmp_path / "one.json"))[2]
    assert found[0]["inScope"] and found[0]["facts"]["weightKg"] == 75 and "repeat-ivig" in [a["id"] for a in found[0]["actions"]]
    patients, errors = read_patients([str(tmp_path / "idC-2.json"), str(tmp_path / "idC-1.json")])
    assert not errors and [p.id for p in patients] == ["C"] and weights(patients[0].graph) == [75.0]


def test_a_bundle_entry_is_named_by_file_and_entry(tmp_path):
    """A reference by urn:uuid is resolved within its Bundle (before its entries join the export); one
    naming no entry of its own Bundle (not even a Patient's fullUrl in another file: full URLs are local
    to their Bundle) is reported as FILE, entry N, on every path."""
    urls = {"x": "urn:uuid:7d3e0000-0000-4000-8000-000000000001"}
    (tmp_path / "b.json").write_text(bundle_of([
        patient("x"), observation("o2", {"reference": "urn:uuid:0b1a"}, "29463-7", 70, "kg"),
        observation("o3", {"reference": urls["x"]}, "29463-7", 71, "kg")], urls))
    (tmp_path / "c.json").write_text(bundle_of([observation("o4", {"reference": urls["x"]}, "29463-7", 72, "kg")]))
    paths = [str(tmp_path / "b.json"), str(tmp_path / "c.json")]
    wanted = [f"{tmp_path / 'b.json'}, entry 2: Observation/o2 reference urn:uuid:0b1a names no Patient entry of its Bundle: skipped",
              f"{tmp_path / 'c.json'}, entry 1: Observation/o4 reference {urls['x']} names no Patient entry of its Bundle: skipped"]
    for found, errors in (read_patients(paths), _batched(paths)):
        assert [str(e) for e in errors] == wanted
        assert [p.id for p in found] == ["x"] and weights(found[0].graph) == [71.0]
    result = invoke("recommend", *AS_OF, "--format", "json", *paths)
    assert result.exit_code == 2 and [line for line in result.stderr.splitlines() if "entry" in line] == [f"neuropathy-kg: {w}" for w in wanted]


def test_the_fhir_export_comes_at_the_place_of_its_first_input(tmp_path):
    """Review 2 #11: with NDJSON among RDF files the NDJSON patients came last. Now the one FHIR export
    (every NDJSON file and Bundle of the run) comes at the place of the first FHIR input; RDF files as
    given; inside the export by bucket, then patient id. The same through the library."""
    write(tmp_path / "lone.ndjson", [patient("p1"), neuropathy("p1")])
    (tmp_path / "b.json").write_text(bundle_of([patient("p2"), neuropathy("p2")]))
    alice, carmen = str(EXAMPLES / "01-responder-relapse.ttl"), str(EXAMPLES / "03-renal-impairment.ttl")
    for args, order in [((alice, str(tmp_path / "lone.ndjson"), carmen), ["alice", "p1", "carmen"]),
                        ((str(tmp_path / "b.json"), alice, str(tmp_path / "lone.ndjson"), carmen), ["p1", "p2", "alice", "carmen"])]:
        result = invoke("recommend", *AS_OF, "--jsonl", *args)
        assert result.exit_code == 0, result.stderr
        assert [json.loads(line)["patient"] for line in result.stdout.splitlines()] == order
        assert [p["patient"] for p in __import__("neuropathy_kg").recommend(list(args), as_of=AS_OF[1])["patients"]] == order


def test_a_patient_split_over_rdf_files_is_reported(tmp_path):
    """RDF files are read one at a time (a patient's graph is one file): the same patient IRI in a second
    RDF file is judged alone there, and said so, exit 2 (it was silent)."""
    for name in ("a.ttl", "b.ttl"):
        (tmp_path / name).write_bytes((EXAMPLES / "01-responder-relapse.ttl").read_bytes())
    result = invoke("recommend", *AS_OF, "--format", "json", str(tmp_path / "a.ttl"), str(tmp_path / "b.ttl"))
    assert result.exit_code == 2
    assert f"neuropathy-kg: {tmp_path / 'b.ttl'}: patient https://example.org/patients/alice/patient is also in {tmp_path / 'a.ttl'}: " in result.stderr
    assert invoke("recommend", *AS_OF, "--format", "json", str(tmp_path / "a.ttl")).exit_code == 0
    twice = invoke("recommend", *AS_OF, "--format", "json", str(tmp_path / "a.ttl"), str(tmp_path / "a.ttl"))
    assert twice.exit_code == 2 and "is also in" in twice.stderr, "the same file given twice is no exception"


# ---------------------------------------------------------------- a Medication given twice (issue 14 closing note)

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def medication(version: str | None, code: str, name: str, mid: str = "m1") -> dict:
    return {"resourceType": "Medication", "id": mid, **({"meta": {"versionId": version}} if version else {}),
            "code": {"coding": [{"system": RXNORM, "code": code, "display": name}]}}


def ordered(pid: str = "A") -> dict:
    return {"resourceType": "MedicationRequest", "id": "rx1", "status": "active", "intent": "order", "authoredOn": "2026-06-01",
            "subject": {"reference": f"Patient/{pid}"}, "medicationReference": {"reference": "Medication/m1"},
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                   "doseAndRate": [{"doseQuantity": {"value": 150, "unit": "mg"}}]}]}


def drugs(graph: rdflib.Graph) -> list[str]:
    return sorted(str(o).rsplit("/", 1)[-1] for o in graph.objects(None, NKG.drug))


def _every_path(tmp_path: Path, name: str, resources: list[dict], medications: list[dict]):
    """(path label, patients, error lines) for the resources with the Medications after them, read as
    NDJSON, as a Bundle, split over a Bundle (the patient's) and an NDJSON file (the Medications), by
    read_patients and by the spooler (batch)."""
    folder = tmp_path / name
    (folder / "nd").mkdir(parents=True)
    (folder / "bundle").mkdir()
    (folder / "split").mkdir()
    write(folder / "nd" / "export.ndjson", [*resources, *medications])
    (folder / "bundle" / "all.json").write_text(bundle_of([*resources, *medications]))
    (folder / "split" / "a.json").write_text(bundle_of([*resources, medications[0]]))
    write(folder / "split" / "m.ndjson", medications[1:])
    for kind in ("nd", "bundle", "split"):
        for reader, (found, errors) in (("read_patients", read_patients([str(folder / kind)])), ("batch", _batched([str(folder / kind)]))):
            yield f"{kind}/{reader}", found, [str(e) for e in errors]


def test_a_medication_given_twice_counts_by_one_rule_on_every_path(tmp_path):
    """Medication/m1 in versions 1 (gabapentin, first), 3 (pregabalin) and 2 (duloxetine, last): its latest
    version counts on every path (the embedded spooler took the first, Bundles and read_patients the last);
    with no version to tell, none counts (the order's drug is unknown: no dose is read from a contested
    drug) and one line names the last copy; identical copies count once, silently."""
    resources = [patient("A"), neuropathy("A"), ordered()]
    versions = [medication("1", "25480", "gabapentin"), medication("3", "187832", "pregabalin"), medication("2", "72625", "duloxetine")]
    for label, found, errors in _every_path(tmp_path, "versions", resources, versions):
        assert errors == [] and drugs(graph_of(found, "A")) == ["pregabalin"], label
    contested = [medication(None, "25480", "gabapentin"), medication(None, "187832", "pregabalin")]
    for label, found, errors in _every_path(tmp_path, "contested", resources, contested):
        assert drugs(graph_of(found, "A")) == [], label
        assert len(errors) == 1 and errors[0].endswith(": Medication/m1 appears 2 times with different content and no version "
                                                       "to tell the latest: none is read"), (label, errors)
        assert errors[0].startswith(("/", str(tmp_path))) and ("export.ndjson:5:" in errors[0] or "all.json, entry 5:" in errors[0]
                                                                or "m.ndjson:1:" in errors[0]), (label, errors)
    same = [medication(None, "187832", "pregabalin")] * 2
    for label, found, errors in _every_path(tmp_path, "same", resources, same):
        assert errors == [] and drugs(graph_of(found, "A")) == ["pregabalin"], label


@pytest.mark.parametrize(("reference", "kind", "named"), [
    ("Patient/p1", "Patient", "p1"),
    ("Patient/p1/_history/3", "Patient", "p1"),
    ("https://ehr.example/fhir/Patient/p1", "Patient", "p1"),
    ("https://ehr.example/fhir/Patient/p1/_history/2?x=1", "Patient", "p1"),
    ("Patient/p1#frag", "Patient", "p1"),
    ("Patient/p1/", "Patient", "p1"),
    ("Group/g1", "Patient", None),
    ("Patient/", "Patient", None),
    ("Patient", "Patient", None),
    ("#contained", "Medication", None),
    ("urn:uuid:0f1b2c3d-0000-4000-8000-000000000001", "Patient", None),
    ("", "Patient", None),
    (None, "Patient", None),
    ("Medication/m1/_history/1", "Medication", "m1"),
    ("https://ehr.example/fhir/MedicationRequest/o1", "MedicationRequest", "o1"),
    ("MedicationRequest/o1", "Medication", None),
])
def test_one_reading_of_reference_text(reference, kind, named):
    """Patient, Medication and priorPrescription references are read by one rule (ndjson.referenced_id)."""
    from neuropathy_kg import ndjson

    assert ndjson.referenced_id(reference, kind) == named
    if kind == "Medication":
        assert ndjson.medication_key({"medicationReference": {"reference": reference}}) == (named and f"Medication/{named}")
    if kind == "Patient":
        target = ndjson.reference_target(reference)
        if named:
            assert target == ndjson.Target("id", named)
        elif isinstance(reference, str) and reference.startswith("urn:uuid:"):
            assert target == ndjson.Target("url", reference)
        else:
            assert target is None
