"""The command-line contract of ../shared/spec/interface.md: formats, exit statuses, one-line errors,
byte-identical reruns, untouched inputs, every patient reported."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import rdflib
from click.testing import CliRunner

from conftest import sparql_json_rows
from neuropathy_kg.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
AS_OF = ["--as-of", "2026-11-24"]


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "an error message on standard error"
    assert len(lines) == len(set(lines)), "no message repeated"
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert any(needle in line for line in lines), (needle, lines)


def test_recommend_every_patient_in_input_order():
    result = invoke("recommend", *AS_OF, "--format", "json", str(EXAMPLES))
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert [p["patient"] for p in document["patients"]] == ["alice", "bob", "carmen", "dmitri", "esther", "farid", "gita", "hamid"]
    assert document["guideline"] == "https://w3id.org/neuropathy-kg/guideline"
    assert document["version"] == "0.1.0" and document["asOf"] == "2026-11-24"
    for patient in document["patients"]:
        for action in patient["actions"]:
            for field in ("dailyAmount", "totalAmount", "startDailyAmount", "maxDailyAmount"):
                if field in action.get("dose", {}):
                    assert isinstance(action["dose"][field], (int, float)), "amounts are numbers"


def test_validate_exit_status():
    assert invoke("validate", *AS_OF, "--format", "json", str(EXAMPLES / "01-responder-relapse.ttl")).exit_code == 1
    conforming = invoke("validate", *AS_OF, "--format", "json", str(EXAMPLES / "05-refractory.ttl"))
    assert conforming.exit_code == 0
    assert json.loads(conforming.stdout)["conforms"] is True


def test_validate_turtle_is_a_shacl_report():
    result = invoke("validate", *AS_OF, "--format", "turtle", str(EXAMPLES / "02-symmetric-ivig-planned.ttl"))
    assert result.exit_code == 1
    graph = rdflib.Graph().parse(data=result.stdout, format="turtle")
    sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    report = next(graph.subjects(rdflib.RDF.type, sh.ValidationReport))
    assert graph.value(report, sh.conforms).toPython() is False
    assert len(list(graph.objects(report, sh.result))) == 1


def test_text_format_is_readable():
    result = invoke("recommend", *AS_OF, "--format", "text", str(EXAMPLES / "01-responder-relapse.ttl"))
    assert "Patient alice" in result.stdout and "repeat-ivig" in result.stdout
    assert "ivig 28.8 g/day x 5 days total 144 g" in result.stdout


def test_text_format_bounds_a_dose_by_its_maximum():
    """A maximum alone reads as a bound, never as the end of a titration ("target 75 to 150")."""
    result = invoke("recommend", *AS_OF, "--format", "text", str(EXAMPLES / "03-renal-impairment.ttl"))
    assert "pregabalin target 75 mg/day (at most 150 mg/day)" in result.stdout
    assert "mg/day to " not in result.stdout


def test_reruns_are_byte_identical_and_inputs_untouched(tmp_path):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in EXAMPLES.iterdir()}
    command = [sys.executable, "-m", "neuropathy_kg.cli", "recommend", *AS_OF, "--format", "json", str(EXAMPLES)]
    first = subprocess.run(command, capture_output=True, check=True).stdout
    second = subprocess.run(command, capture_output=True, check=True).stdout
    assert first == second and first
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in EXAMPLES.iterdir()}


def test_standard_input():
    text = (EXAMPLES / "04-hepatic-disease.ttl").read_text()
    result = invoke("recommend", *AS_OF, "--format", "json", "-", stdin=text)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["patients"][0]["patient"] == "dmitri"


def test_other_rdf_formats(tmp_path):
    graph = rdflib.Graph().parse(EXAMPLES / "03-renal-impairment.ttl")
    expected = json.loads(invoke("recommend", *AS_OF, "--format", "json", str(EXAMPLES / "03-renal-impairment.ttl")).stdout)
    for fmt, suffix in (("nt", ".nt"), ("json-ld", ".jsonld"), ("xml", ".rdf")):
        path = tmp_path / f"carmen{suffix}"
        path.write_text(graph.serialize(format=fmt))
        result = invoke("recommend", *AS_OF, "--format", "json", str(path))
        assert result.exit_code == 0, (fmt, result.stderr)
        assert json.loads(result.stdout) == expected, fmt


def test_trig_one_named_graph_per_patient(tmp_path):
    dataset = rdflib.Dataset()
    for name in ("01-responder-relapse", "04-hepatic-disease"):
        named = dataset.graph(rdflib.URIRef(f"https://example.org/graphs/{name}"))
        named.parse(EXAMPLES / f"{name}.ttl")
    path = tmp_path / "two.trig"
    path.write_text(dataset.serialize(format="trig"))
    result = invoke("recommend", *AS_OF, "--format", "json", str(path))
    assert result.exit_code == 0, result.stderr
    assert sorted(p["patient"] for p in json.loads(result.stdout)["patients"]) == ["alice", "dmitri"]


def test_missing_path():
    one_line_error(invoke("recommend", *AS_OF, "no/such/file.ttl"), "no/such/file.ttl", "no such file")


def test_broken_turtle_names_the_file_and_others_still_run(tmp_path):
    bad = tmp_path / "broken.ttl"
    bad.write_text("@prefix nkg: <https://w3id.org/neuropathy-kg/> .\nnkg:x nkg:y ")
    result = invoke("recommend", *AS_OF, "--format", "json", str(bad), str(EXAMPLES / "04-hepatic-disease.ttl"))
    one_line_error(result, "broken.ttl", "not valid turtle")
    assert [p["patient"] for p in json.loads(result.stdout)["patients"]] == ["dmitri"]


@pytest.mark.parametrize(("content", "needle"), [
    (b"", "empty"),
    (b"\xff\xfe\x00garbage\x80", "not UTF-8"),
    (b"@prefix ex: <https://example.org/> . ex:a ex:b ex:c .", "no patient"),
])
def test_unusable_files(tmp_path, content, needle):
    path = tmp_path / "input.ttl"
    path.write_bytes(content)
    one_line_error(invoke("validate", *AS_OF, str(path)), "input.ttl", needle)



def test_bad_as_of_is_a_usage_error():
    result = invoke("recommend", "--as-of", "24/11/2026", str(EXAMPLES))
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.stderr


def test_empty_folder(tmp_path):
    one_line_error(invoke("recommend", *AS_OF, str(tmp_path)), str(tmp_path), "no patient files")


def test_named_query_and_query_file(tmp_path):
    result = invoke("query", "patient-facts", *AS_OF, "--format", "json", str(EXAMPLES / "03-renal-impairment.ttl"))
    assert result.exit_code == 0, result.stderr
    rows = sparql_json_rows(result.stdout)
    assert rows[0]["renalBand"] == "15-29" and float(rows[0]["creatinineClearance"]) == 25
    question = tmp_path / "bands.rq"
    question.write_text("PREFIX nkg: <https://w3id.org/neuropathy-kg/>\n"
                        "SELECT ?code WHERE { ?band a nkg:RenalBand ; nkg:bandCode ?code } ORDER BY ?code")
    rows = sparql_json_rows(invoke("query", str(question), "--format", "json").stdout)
    assert [r["code"] for r in rows] == ["15-29", "30-59", "<15", ">=60"]


def test_bad_query_is_one_line(tmp_path):
    one_line_error(invoke("query", "no-such-query", str(EXAMPLES)), "no-such-query")
    broken = tmp_path / "broken.rq"
    broken.write_text("SELECT WHERE {")
    one_line_error(invoke("query", str(broken)), "broken.rq", "query failed")


# ---------------------------------------------------------------- hostile input (issue 6, in part)

def test_rdfxml_external_entity_is_refused_and_nothing_is_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    path = tmp_path / "xxe.rdf"
    path.write_text(f"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [ <!ENTITY xxe SYSTEM "{secret.as_uri()}"> ]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:nkg="https://w3id.org/neuropathy-kg/">
  <nkg:Patient rdf:about="https://example.org/p"><nkg:patientId>&xxe;</nkg:patientId></nkg:Patient>
</rdf:RDF>""")
    result = invoke("recommend", *AS_OF, "--format", "json", str(path))
    one_line_error(result, "xxe.rdf", "DOCTYPE")
    assert "TOP SECRET" not in result.stdout + result.stderr


def test_billion_laughs_is_refused_at_once(tmp_path):
    entities = "".join(f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10 if i > 1 else "lol"}">' for i in range(1, 10))
    path = tmp_path / "laughs.rdf"
    path.write_text(f"""<?xml version="1.0"?><!DOCTYPE rdf:RDF [{entities}]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:nkg="https://w3id.org/neuropathy-kg/">
<nkg:Patient rdf:about="https://example.org/p"><nkg:patientId>&lol9;</nkg:patientId></nkg:Patient></rdf:RDF>""")
    one_line_error(invoke("validate", *AS_OF, str(path)), "laughs.rdf", "entity declarations")


def test_jsonld_remote_context_is_never_fetched(tmp_path, monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    path = tmp_path / "remote.jsonld"
    path.write_text(json.dumps({"@context": ["https://example.org/context.jsonld", {"nkg": "https://w3id.org/neuropathy-kg/"}],
                                "@id": "https://example.org/p", "@type": "nkg:Patient"}))
    one_line_error(invoke("recommend", *AS_OF, str(path)), "remote.jsonld", "remote context")
