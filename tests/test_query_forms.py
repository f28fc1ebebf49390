"""`query` runs every SPARQL query form on both engines and writes the standard result formats:
SPARQL 1.1 Query Results JSON, CSV and TSV, a text table in SELECT order, ASK as JSON or text,
CONSTRUCT/DESCRIBE as Turtle or N-Triples. Usage errors exit 2; text output escapes control characters."""

from __future__ import annotations

import csv
import io
import json

import pytest
import rdflib
from click.testing import CliRunner

from conftest import ROOT, sparql_json_rows
from neuropathy_kg import render
from neuropathy_kg.cli import main

EXAMPLES = ROOT / "examples"
AS_OF = ["--as-of", "2026-11-24"]
ENGINES = ["oxigraph", "rdflib"]
NKG = "PREFIX nkg: <https://w3id.org/neuropathy-kg/>\n"
BANDS = NKG + "SELECT ?code ?band ?missing WHERE { ?band a nkg:RenalBand ; nkg:bandCode ?code } ORDER BY ?code"


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


@pytest.fixture
def query_file(tmp_path):
    def write(text: str):
        path = tmp_path / f"q{len(list(tmp_path.glob('*.rq')))}.rq"
        path.write_text(text)
        return str(path)
    return write


@pytest.mark.parametrize("engine", ENGINES)
def test_select_json_is_sparql_results_json(engine, query_file):
    document = json.loads(run("query", query_file(BANDS), "--engine", engine, "--format", "json").stdout)
    assert document["head"]["vars"] == ["code", "band", "missing"]
    bindings = document["results"]["bindings"]
    assert [b["code"] for b in bindings][0] == {"type": "literal", "value": "15-29"}  # a plain string: no datatype
    assert all(b["band"]["type"] == "uri" and "missing" not in b for b in bindings)
    assert len(bindings) == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_select_csv_and_tsv(engine, query_file):
    text = run("query", query_file(BANDS), "--engine", engine, "--format", "csv").stdout_bytes.decode()
    assert text.startswith("code,band,missing\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][0] == "15-29" and rows[1][1].startswith("https://w3id.org/neuropathy-kg/") and rows[1][2] == ""
    tsv = run("query", query_file(BANDS), "--engine", engine, "--format", "tsv").stdout.splitlines()
    assert tsv[0] == "?code\t?band\t?missing"
    assert tsv[1].split("\t")[0] == '"15-29"' and tsv[1].split("\t")[1].startswith("<https://w3id.org/neuropathy-kg/")


def test_typed_values_in_tsv_and_json(query_file):
    text = NKG + "SELECT ?n ?d ?b WHERE { BIND(25 AS ?n) BIND(\"2026-11-24\"^^<http://www.w3.org/2001/XMLSchema#date> AS ?d) BIND(true AS ?b) }"
    tsv = run("query", query_file(text), "--format", "tsv").stdout.splitlines()[1].split("\t")
    assert tsv[0] == '"25"^^<http://www.w3.org/2001/XMLSchema#integer>'
    assert tsv[1] == '"2026-11-24"^^<http://www.w3.org/2001/XMLSchema#date>'
    binding = json.loads(run("query", query_file(text), "--format", "json").stdout)["results"]["bindings"][0]
    assert binding["n"] == {"type": "literal", "value": "25", "datatype": "http://www.w3.org/2001/XMLSchema#integer"}


def test_text_table_keeps_select_order(query_file):
    text = run("query", query_file(NKG + "SELECT ?zeta ?alpha WHERE { VALUES (?zeta ?alpha) { (1 2) } }"), "--format", "text").stdout
    header = text.splitlines()[0].split()
    assert header == ["zeta", "alpha"]
    assert text.splitlines()[-1].split() == ["1", "2"]


def test_both_engines_give_the_same_rows():
    outputs = [run("query", "patient-facts", *AS_OF, "--engine", engine, "--format", "json", str(EXAMPLES)).stdout
               for engine in ENGINES]
    rows = [sorted(json.dumps(b, sort_keys=True) for b in json.loads(o)["results"]["bindings"]) for o in outputs]
    assert rows[0] == rows[1] and len(rows[0]) == 8


@pytest.mark.parametrize("engine", ENGINES)
def test_ask(engine, query_file):
    path = query_file(NKG + "ASK { ?p a nkg:Patient }")
    assert json.loads(run("query", path, *AS_OF, "--engine", engine, "--format", "json", str(EXAMPLES)).stdout) == {"head": {}, "boolean": True}
    assert run("query", path, "--engine", engine, "--format", "text").stdout == "false\n"
    assert "ASK queries have no --format csv" in run("query", path, "--format", "csv", code=2).stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_construct_and_describe(engine, query_file):
    construct = query_file(NKG + "CONSTRUCT { ?p nkg:patientId ?id } WHERE { ?p a nkg:Patient ; nkg:patientId ?id }")
    turtle = run("query", construct, *AS_OF, "--engine", engine, str(EXAMPLES)).stdout  # Turtle by default
    graph = rdflib.Graph().parse(data=turtle, format="turtle")
    assert sorted(map(str, graph.objects())) == ["alice", "bob", "carmen", "dmitri", "esther", "farid", "gita", "hamid"]
    ntriples = run("query", construct, *AS_OF, "--engine", engine, "--format", "ntriples", str(EXAMPLES)).stdout
    assert len(ntriples.splitlines()) == 8 and all(line.endswith(" .") for line in ntriples.splitlines())
    assert '"alice" .' in ntriples  # plain strings on both engines (Oxigraph says xsd:string)
    describe = query_file("DESCRIBE <https://w3id.org/neuropathy-kg/repeat-ivig>")
    described = rdflib.Graph().parse(data=run("query", describe, "--engine", engine).stdout, format="turtle")
    assert (rdflib.URIRef("https://w3id.org/neuropathy-kg/repeat-ivig"), None, None) in described
    assert "CONSTRUCT queries have no --format json" in run("query", construct, "--format", "json", code=2).stderr


def test_usage_errors_exit_2(query_file):
    for command in ("recommend", "validate"):
        for fmt in ("text", "turtle") if command == "validate" else ("text",):
            result = run(command, "--jsonl", "--format", fmt, str(EXAMPLES), code=2)
            assert "--jsonl" in result.stderr and "Traceback" not in result.stderr
    assert "--graph" in run("query", "patient-facts", "--graph", "urn:x", str(EXAMPLES), code=2).stderr
    assert "query failed" in run("query", query_file("SELEKT nothing"), code=2).stderr


def test_validate_guideline_as_turtle():
    result = run("validate", "--guideline", "--format", "turtle")
    graph = rdflib.Graph().parse(data=result.stdout, format="turtle")
    sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    report = next(graph.subjects(rdflib.RDF.type, sh.ValidationReport))
    assert graph.value(report, sh.conforms).toPython() is True


def test_help_texts_have_an_example_and_exit_codes():
    for command in ("recommend", "validate", "query", "reason", "load", "interactions", "docs", "release",
                    "export fhir-cpg", ""):
        text = run(*command.split(), "--help").stdout
        assert "Example" in text and "Exit status" in text, command


# ---------------------------------------------------------------- text output

def test_control_characters_are_escaped():
    assert render.clean("a\x1b[2Jb\nc\rd\x7f\x9b") == "a\\x1b[2Jb\\nc\\rd\\x7f\\x9b"
    document = {"guideline": "g", "version": "1", "asOf": "2026-11-24", "conforms": False, "patients": [
        {"patient": "evil\x1b]0;owned\x07\nPatient forged: conforms", "conforms": False,
         "findings": [{"severity": "violation", "id": "x", "message": "bad\x1b[31m red", "citations": []}]}]}
    text = render.findings(document)
    assert "\x1b" not in text and "\x07" not in text
    assert len([line for line in text.splitlines() if line.startswith("Patient ")]) == 1
    table = render.table(["id\x1b"], [["a\nb"]])
    assert "\x1b" not in table and "a\\nb" in table


def test_escaped_through_the_command(tmp_path):
    """A patient id with ESC and a newline, from a file, reaches the terminal escaped."""
    text = (EXAMPLES / "03-renal-impairment.ttl").read_text().replace('nkg:patientId "carmen"', 'nkg:patientId "car\\u001b[2Jmen\\nPatient x: conforms"')
    path = tmp_path / "evil.ttl"
    path.write_text(text)
    for command in ("recommend", "validate"):
        out = CliRunner().invoke(main, [command, *AS_OF, "--format", "text", str(path)]).stdout
        assert "\x1b" not in out and "car\\x1b[2Jmen\\nPatient x" in out, command


def test_plurals_and_absent_values():
    assert render.plural(1, "patient") == "1 patient" and render.plural(2, "patient") == "2 patients"
    assert render.quantity(7.5, "%") == "7.5%" and render.quantity(68.0, "mL/min") == "68 mL/min"
    assert render.number(87.55) == "87.55" and render.number(3) == "3"
    assert render.prose("pregabalin 300.0 mg/day, 28.50 mL/min, version 0.1.0, 2026-11-24") == \
        "pregabalin 300 mg/day, 28.50 mL/min, version 0.1.0, 2026-11-24"
    findings = run("validate", *AS_OF, "--format", "text", str(EXAMPLES), code=1).stdout
    assert "pregabalin 300 mg/day" in findings and "300.0" not in findings
    one = run("validate", *AS_OF, "--format", "text", str(EXAMPLES / "03-renal-impairment.ttl"), code=1).stdout
    assert "1 patient checked" in one
    text = run("recommend", *AS_OF, "--format", "text", str(EXAMPLES)).stdout
    for wrong in ("not recorded m", "not recorded%", "on not recorded", "1 patients", "not recorded/10", "dated not recorded"):
        assert wrong not in text, wrong


def test_progress_has_total_percentage_and_rate_only_when_asked():
    shown = run("recommend", *AS_OF, "--progress", "--format", "json", str(EXAMPLES)).stderr
    last = shown.replace("\r", "\n").strip().splitlines()[-2]
    assert "100%" in last and "7/7" in last and "unit/s" in last and "8 patients" in last
    assert "100%" not in run("recommend", *AS_OF, "--format", "json", str(EXAMPLES)).stderr  # not a terminal


@pytest.mark.parametrize("engine", ENGINES)
def test_tsv_literals_with_line_breaks_tabs_and_quotes_are_read_back_by_a_tsv_parser(engine, query_file, tmp_path):
    """review2 entry 4: a literal with a newline was written in the long triple-quoted form, which
    Oxigraph's and rdflib's TSV parsers reject; the short escaped form reads back to the same terms."""
    import pyoxigraph

    texts = ["line1\nline2", "tab\there", 'a "quoted" \\ back', "cr\r\nlf", "plain"]
    data = tmp_path / "h.ttl"
    data.write_text("@prefix nkg: <https://w3id.org/neuropathy-kg/> .\n" + "".join(
        f"<https://example.org/p/{i}> a nkg:Patient ; nkg:patientId {json.dumps(t)} ; nkg:note {json.dumps(t)}@en ; "
        f"nkg:weightKg \"{i}.5\"^^<http://www.w3.org/2001/XMLSchema#decimal> .\n" for i, t in enumerate(texts)))
    query = query_file(NKG + "SELECT ?p ?id ?note ?w ?none WHERE { ?p nkg:patientId ?id ; nkg:note ?note ; nkg:weightKg ?w } ORDER BY ?p")
    tsv = run("query", query, "--engine", engine, "--format", "tsv", str(data)).stdout
    rows = list(pyoxigraph.parse_query_results(tsv.encode(), pyoxigraph.QueryResultsFormat.TSV))
    assert [(row["id"].value, row["note"].value, row["note"].language, row["w"].value, row["none"]) for row in rows] == \
        [(t, t, "en", f"{i}.5", None) for i, t in enumerate(texts)]
    assert len(tsv.splitlines()) == len(texts) + 1
