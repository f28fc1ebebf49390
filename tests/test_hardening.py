"""Issue 6: broken and hostile input, failures inside a batch, atomic output. Every bad input ends in one
line on standard error naming the file (and line where known), exit 2, no traceback, and the good
inputs beside it are still processed."""

from __future__ import annotations

import builtins
import json
import os
import shutil

import pytest

from test_cli import AS_OF, EXAMPLES, invoke, one_line_error

GOOD = EXAMPLES / "04-hepatic-disease.ttl"  # one patient, "dmitri"
R4_CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.44"}]},
                "clinicalStatus": {"coding": [{"code": "active"}]}}


def bundle(*resources: dict) -> str:
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": r} for r in ({"resourceType": "Patient", "id": "p1"}, *resources)]})


# Each case: file name, content, words the one error line must hold, and (where the file is only partly
# bad) the patients still read from it.
MATRIX = [
    ("truncated.json", bundle(R4_CONDITION)[:-40], ["truncated.json", "not valid JSON"]),
    ("not-fhir.json", json.dumps({"patients": [{"name": "x"}]}), ["not-fhir.json", "not FHIR"]),
    ("stu3.json", bundle({**R4_CONDITION, "clinicalStatus": "active"}), ["stu3.json", "STU3", "only FHIR R4"]),
    ("dstu2.json", bundle({"resourceType": "MedicationOrder", "id": "m1", "patient": {"reference": "Patient/p1"}}),
     ["dstu2.json", "DSTU2"]),
    ("r5.json", bundle({"resourceType": "MedicationStatement", "id": "m1", "status": "recorded", "subject": {"reference": "Patient/p1"},
                        "medication": {"concept": {"text": "pregabalin"}}}), ["r5.json", "R5"]),
    ("broken.ttl", "@prefix nkg: <https://w3id.org/neuropathy-kg/> .\nnkg:a nkg:b ", ["broken.ttl", "not valid turtle"]),
    ("broken.nt", "<https://example.org/a> <https://example.org/b> .\n", ["broken.nt", "not valid nt"]),
    ("broken.rdf", '<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description',
     ["broken.rdf", "not valid xml"]),
    ("broken.jsonld", '{"@id": "https://example.org/p", "@type": ', ["broken.jsonld", "json-ld"]),
    ("empty.json", "", ["empty.json", "empty"]),
    ("deep.json", "[" * 200_000 + "]" * 200_000, ["deep.json"]),
    ("deep.ndjson", '{"resourceType": "Patient", "id": "p1"}\n' + "[" * 200_000 + "]" * 200_000 + "\n", ["deep.ndjson:2"], ["p1"]),
    # Found by bench/fuzz_fhir.py: a resource id holding a newline made the error two lines.
    ("newline-id.json", bundle({"resourceType": "Condition", "id": "bad\nid", "subject": {"reference": "Patient/p1"}, "code": 1}),
     ["newline-id.json", "Condition/bad\\nid could not be read"], ["p1"]),
    ("garbage.ttl", b"\x00\x01\x02\xff\xfe binary \x80\x81", ["garbage.ttl", "not UTF-8"]),
    ("latin1.ttl", "# caf\u00e9\n".encode("latin-1"), ["latin1.ttl", "not UTF-8"]),
]


@pytest.mark.parametrize(("name", "content", "needles", "partly_read"), [(*case, [])[:4] for case in MATRIX],
                         ids=[case[0] for case in MATRIX])
def test_bad_input_matrix(tmp_path, name, content, needles, partly_read):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = path.read_bytes()
    result = invoke("recommend", *AS_OF, "--format", "json", str(path), str(GOOD))
    one_line_error(result, *needles)
    read = [p["patient"] for p in json.loads(result.stdout)["patients"]]
    assert sorted(read) == sorted(["dmitri", *partly_read]), "good inputs and lines still run"
    assert path.read_bytes() == before, "inputs are never written"


def test_missing_path_and_folder_without_patient_files(tmp_path):
    one_line_error(invoke("validate", *AS_OF, str(tmp_path / "nope.json")), "nope.json", "no such file")
    (tmp_path / "notes.txt").write_text("not a patient file")
    one_line_error(invoke("validate", *AS_OF, str(tmp_path)), str(tmp_path), "no patient files")


def test_unreadable_file(tmp_path, monkeypatch):
    """As root, permissions do not stop reading, so the refusal is simulated where the file is opened."""
    locked = tmp_path / "locked.json"
    locked.write_text(bundle(R4_CONDITION))
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if str(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    result = invoke("recommend", *AS_OF, "--format", "json", str(locked), str(GOOD))
    one_line_error(result, "locked.json", "Permission denied")
    assert [p["patient"] for p in json.loads(result.stdout)["patients"]] == ["dmitri"]


def test_device_is_refused_not_read_forever():
    one_line_error(invoke("recommend", *AS_OF, "/dev/zero"), "/dev/zero", "not a regular file")


def test_one_gigabyte_document_is_refused_before_reading(tmp_path):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:  # sparse: no disk is used
        handle.truncate(1 << 30)
    result = invoke("recommend", *AS_OF, "--format", "json", str(huge), str(GOOD))
    one_line_error(result, "huge.json", "over the 256 MB limit", "NDJSON")


def test_one_gigabyte_ndjson_line_is_skipped_without_holding_it(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "Patient.ndjson").write_text(json.dumps({"resourceType": "Patient", "id": "p1"}) + "\n")
    with open(export / "Observation.ndjson", "wb") as handle:  # one sparse line of 1 GB, no newline
        handle.truncate(1 << 30)
    result = invoke("recommend", *AS_OF, "--format", "json", str(export))
    one_line_error(result, "Observation.ndjson:1", "longer than 64 MB")
    assert [p["patient"] for p in json.loads(result.stdout)["patients"]] == ["p1"]


def test_not_a_number_is_a_malformed_value_not_a_crash(tmp_path):
    weight = {"resourceType": "Observation", "id": "w", "status": "final", "subject": {"reference": "Patient/p1"},
              "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "effectiveDateTime": "2026-11-01",
              "valueQuantity": {"value": float("nan"), "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
    path = tmp_path / "nan.json"
    path.write_text(bundle(R4_CONDITION, weight))  # json.dumps writes NaN, which json.loads accepts
    result = invoke("validate", *AS_OF, "--format", "json", str(path))
    assert "Traceback" not in result.stderr and result.exit_code in (0, 1)
    findings = {f["id"] for f in json.loads(result.stdout)["patients"][0]["findings"]}
    assert "data-malformed-value" in findings


# ---------------------------------------------------------------- batches

def test_a_patient_that_breaks_a_chunk_is_reported_alone(monkeypatch):
    from neuropathy_kg import pipeline

    real = pipeline.recommend_chunk

    def breaks_on_bob(patients, *args, **kwargs):
        if any(p.id == "bob" for p in patients):
            raise ZeroDivisionError("simulated fault in bob's data")
        return real(patients, *args, **kwargs)

    monkeypatch.setattr(pipeline, "recommend_chunk", breaks_on_bob)
    result = invoke("recommend", *AS_OF, "--format", "json", "--jobs", "1", str(EXAMPLES))
    one_line_error(result, "patient bob", "could not be processed", "simulated fault")
    document = json.loads(result.stdout)
    assert [p["patient"] for p in document["patients"]] == ["alice", "carmen", "dmitri", "esther", "farid", "gita", "hamid"]
    assert document["summary"] == {"patients": 7, "failedPatients": 1, "failedInputs": 0}


def test_bad_lines_in_worker_processes_name_the_original_file_and_line(tmp_path):
    """Errors come back from worker processes (they must survive pickling) and point at the user's file,
    not at the spool bucket the line was copied into."""
    export = tmp_path / "export"
    export.mkdir()
    patients = [json.dumps({"resourceType": "Patient", "id": f"p{i}", "gender": "female"}) for i in range(40)]
    patients.insert(7, '{"resourceType": "Patient", "id": "broken"')
    (export / "Patient.ndjson").write_text("\n".join(patients) + "\n")
    conditions = [json.dumps({**R4_CONDITION, "id": f"c{i}", "subject": {"reference": f"Patient/p{i}"}}) for i in range(40)]
    (export / "Condition.ndjson").write_text("\n".join(conditions) + "\n")
    result = invoke("recommend", *AS_OF, "--jsonl", "--jobs", "2", str(export))
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert f"{export / 'Patient.ndjson'}:8: not valid JSON" in result.stderr
    assert len(result.stdout.splitlines()) == 40
    assert "40 patients processed, 0 patients failed, 1 input or line skipped" in result.stderr


# ---------------------------------------------------------------- output

def test_output_is_written_whole_and_never_onto_an_input(tmp_path):
    target = tmp_path / "out" / "actions.json"
    target.parent.mkdir()
    assert invoke("recommend", *AS_OF, "--output", str(target), str(GOOD)).exit_code == 0
    assert json.loads(target.read_text())["patients"][0]["patient"] == "dmitri"
    assert os.listdir(target.parent) == ["actions.json"], "no temporary file is left behind"
    copy = tmp_path / "input.ttl"
    shutil.copy(GOOD, copy)
    before = copy.read_bytes()
    one_line_error(invoke("recommend", *AS_OF, "--output", str(copy), str(copy)), "input.ttl", "one of the inputs")
    assert copy.read_bytes() == before


def test_failed_run_leaves_an_existing_output_untouched(tmp_path):
    target = tmp_path / "findings.json"
    target.write_text("previous results")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.ttl").write_text("@prefix ex: <https://example.org/> . ex:a ex:b ex:c .")
    result = invoke("validate", *AS_OF, "--output", str(target), str(empty))
    assert result.exit_code == 2
    assert target.read_text() == "previous results"
    assert sorted(os.listdir(tmp_path)) == ["empty", "findings.json"]


# ---------------------------------------------------------------- hostile values

def test_patient_text_is_data_never_query_text(tmp_path):
    """Identifiers and units that look like SPARQL or regular-expression syntax pass through as data."""
    hostile = 'x" } ; DELETE WHERE { ?s ?p ?o } ; #\\1'
    path = tmp_path / "hostile.ttl"
    path.write_text(f"""@prefix nkg: <https://w3id.org/neuropathy-kg/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<https://example.org/p> a nkg:Patient ; nkg:patientId {json.dumps(hostile)} ; nkg:birthDate "1960-01-01"^^xsd:date ; nkg:sex "male" .
<https://example.org/c> a nkg:ConditionRecord ; nkg:subject <https://example.org/p> ; nkg:code nkg:symmetric-diabetic-polyneuropathy ;
    nkg:recordedDate "2026-01-01"^^xsd:date .
<https://example.org/w> a nkg:ObservationRecord ; nkg:subject <https://example.org/p> ; nkg:code nkg:body-weight ; nkg:value 80 ;
    nkg:unit "kg\\\\1 }} ; DROP ALL" ; nkg:date "2026-11-01"^^xsd:date .
""")
    result = invoke("validate", *AS_OF, "--format", "json", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    patient = json.loads(result.stdout)["patients"][0]
    assert patient["patient"] == hostile
    unit_finding = next(f for f in patient["findings"] if f["id"] == "data-unit-not-convertible")
    assert "kg\\1 } ; DROP ALL" in unit_finding["message"]
    recommended = json.loads(invoke("recommend", *AS_OF, "--format", "json", str(path)).stdout)
    assert recommended["patients"][0]["patient"] == hostile
    assert "standard-pharmacologic-management" in {a["id"] for a in recommended["patients"][0]["actions"]}
