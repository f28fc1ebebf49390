"""Issue 17, latency: the service reads only what the rules read. A hook request's prefetch is scanned by
msgspec and only the resources fhir.may_be_read keeps are parsed and converted (service.parse_hook_body,
fhir.to_patients_of_resources). These tests hold that this changes nothing the rules see: the same
patient N-Triples as reading the whole request as a Bundle, for every scenario's FHIR twin and for the
Synthea exports (skipped where ../shared/data/synthea is absent), and the same 400s for malformed
requests (which take the slow path)."""

from __future__ import annotations

import glob
import gzip
import json
from pathlib import Path

import orjson
import pytest

from conftest import scenario_input, scenario_names
from service_client import KEY_OF, hook_request, scenario_resources
from neuropathy_kg import fhir, service
from neuropathy_kg.service import BadRequest, check_hook_request, parse_hook_body, parse_json, patient_data, resources_of

ROOT = Path(__file__).resolve().parents[1]
#: ../shared beside the clone (CI), or the shared folder of the workplace a worktree is in.
SYNTHEA = next((found for root in (ROOT.parent, ROOT.parents[1])
                if (found := sorted(glob.glob(str(root / "shared/data/synthea/*.json.gz"))))), [])


def whole(resources: list[dict]) -> dict[str, list[bytes]]:
    """Patient id -> its N-Triples lines (sorted: the prefetch groups resources by type), the resources
    read as one Bundle by the file reader (the reference)."""
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    patients, _problems, _count = fhir.to_patients("request", orjson.dumps(bundle))
    return lines(patients)


def lines(patients) -> dict[str, list[bytes]]:
    return {p.id: sorted(p.ntriples.splitlines()) for p in patients}


def fast(body: bytes) -> list[dict]:
    parsed = parse_hook_body(body)
    return [r for key, value in (parsed.get("prefetch") or {}).items() if key in service.PREFETCH for r in resources_of(value)]


def synthea_request(path: str) -> tuple[bytes, list[dict], str]:
    resources = [e["resource"] for e in json.loads(gzip.open(path).read())["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetched = [r for r in resources if r["resourceType"] in KEY_OF]
    return orjson.dumps(hook_request("patient-view", patient["id"], prefetched, "2026-11-24")), prefetched, patient["id"]


@pytest.mark.parametrize("name", [n for n in scenario_names() if scenario_input(n).suffix == ".ttl"])  # RDF scenarios (their FHIR twins)
def test_every_scenario_reads_the_same_through_the_fast_path(name):
    for pid, resources in scenario_resources(name).items():
        kept = fast(orjson.dumps(hook_request("patient-view", pid, resources, "2026-11-24")))
        patients, _problems, _count = fhir.to_patients_of_resources("request", kept)
        assert lines(patients) == whole(resources), name


@pytest.mark.skipif(not SYNTHEA, reason="no ../shared/data/synthea")
@pytest.mark.parametrize("path", SYNTHEA, ids=lambda p: Path(p).name.split("_")[0])
def test_synthea_exports_read_the_same_and_most_resources_are_never_parsed(path):
    body, prefetched, pid = synthea_request(path)
    kept = fast(body)
    patients, _problems, _count = fhir.to_patients_of_resources("request", kept)
    reference = whole(prefetched)
    assert lines(patients) == reference and reference[pid]
    assert len(kept) < len(prefetched) / 2, (len(kept), len(prefetched))
    assert sorted(patient_data(kept, pid, "request").ntriples.splitlines()) == reference[pid]


def test_a_copy_of_a_kept_resource_is_kept_even_where_its_own_code_is_unknown():
    """The same resource twice (type and id) is read once, in its latest version: where the latest copy
    has a code the rules do not know, it must reach the reader, which then reads neither."""
    resources = scenario_resources("example-03-renal-impairment")["carmen"]
    weight = next(r for r in resources if r["resourceType"] == "Observation" and fhir.may_be_read(r))
    newer = {**weight, "meta": {"versionId": "2"}, "code": {"coding": [{"system": "http://loinc.org", "code": "0000-0"}], "text": "x"}}
    older = {**weight, "meta": {"versionId": "1"}}
    assert not fhir.may_be_read(newer)
    data = [r for r in resources if r is not weight] + [older, newer]
    kept = fast(orjson.dumps(hook_request("patient-view", "carmen", data, "2026-11-24")))
    assert older in kept and newer in kept
    patients, _problems, _count = fhir.to_patients_of_resources("request", kept)
    assert lines(patients) == whole(data)


def test_resources_the_reader_must_see_to_refuse_are_kept():
    """A resource of another FHIR release is kept, whatever its code, so that the request is refused as
    the file reader refuses it; a code element that is no CodeableConcept is kept for the reader to report."""
    stu3 = {"resourceType": "Condition", "id": "c", "clinicalStatus": "active", "code": {"text": "nothing known"},
            "subject": {"reference": "Patient/p"}}
    assert fhir.may_be_read(stu3)
    assert fhir.may_be_read({"resourceType": "ProcedureRequest", "id": "x"})
    assert fhir.may_be_read({"resourceType": "Observation", "id": "o", "code": "a string"})
    assert not fhir.may_be_read({"resourceType": "Encounter", "id": "e"})
    assert not fhir.may_be_read({"resourceType": "Observation", "id": "o"})
    assert fhir.may_be_read({"resourceType": "Medication", "id": "m"}), "read through medicationReference"
    body = orjson.dumps(hook_request("patient-view", "p", [{"resourceType": "Patient", "id": "p"}, stu3], "2026-11-24"))
    assert stu3 in fast(body)
    with pytest.raises(BadRequest, match="STU3"):
        patient_data(fast(body), "p", "request")


def test_every_read_type_has_a_reader_and_the_prefetch_asks_for_each():
    conventions = fhir.vocabulary().conventions["read_resource_types"]
    handlers = {name[1:] for name in dir(fhir._Converter) if name[:1] == "_" and name[1:2].isupper()}
    assert handlers == set(conventions) - {"Medication"}
    assert set(fhir.CODED_TYPES) <= set(conventions)
    asked = {template.split("?")[0].split("/")[0] for template in service.PREFETCH.values()}
    assert asked == set(conventions) - {"Medication"}


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'{"hook": "patient-view", "prefetch": [1]}',
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": {"a": 1}}}}',
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": [{"no": "resource"}]}}}',
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": [{"resource": {"id": 1}}]}}}',
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": [3]}}}',
    b'{"hook": "patient-view", "prefetch": {"observations": {"entry": []}}}',
    b'{"hook": "patient-view", "prefetch": {"patient": 7}}',
])
def test_a_malformed_request_is_answered_as_the_whole_parse_answers_it(body):
    """The fast path gives up on anything not shaped as it expects; the whole parse and the checks then
    answer as they did (the same 400, or the same accepted request)."""
    def outcome(parse):
        try:
            parsed = parse(body)
            return check_hook_request("patient-view", {**parsed, "hookInstance": "1", "context": {"patientId": "p"}})
        except BadRequest as error:
            return (error.status, str(error))

    assert outcome(parse_hook_body) == outcome(parse_json)
    assert isinstance(outcome(parse_hook_body), tuple), "each of these is a 400"
