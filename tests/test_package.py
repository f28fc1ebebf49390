"""The package as users get it: the wheel carries the guideline (ontology/, shapes/, queries/, data files,
LICENSE), ``python -m neuropathy_kg`` is the command, the library API returns the commands' documents
for paths and FHIR JSON in memory, and ``import neuropathy_kg`` stays light."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import rdflib
from click.testing import CliRunner

import neuropathy_kg
from conftest import ROOT
from neuropathy_kg.cli import main

EXAMPLES = ROOT / "examples"
AS_OF = "2026-11-24"


def _json_of(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code in (0, 1), result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=120)
    return next(out.glob("neuropathy_kg-*.whl"))


def test_wheel_carries_the_guideline(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    folders = Counter(n.split("/")[2] for n in names if n.startswith("neuropathy_kg/artefacts/"))
    for folder in ("ontology", "shapes", "queries"):
        expected = sum(1 for p in (ROOT / folder).rglob("*") if p.is_file())
        assert folders[folder] == expected > 0, folder
    assert "neuropathy_kg/artefacts/ontology/patient-model.ttl" in names
    assert "neuropathy_kg/artefacts/shapes/prefixes.ttl" in names
    assert "neuropathy_kg/artefacts/queries/report/patient-facts.rq" in names
    assert "neuropathy_kg/fhir_conventions.json" in names
    assert "neuropathy_kg/templates/catalogue.html.j2" in names
    assert "neuropathy_kg/__main__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Python: >=3.11" in metadata and "License-Expression: Apache-2.0" in metadata
    assert "Project-URL: Homepage, https://w3id.org/neuropathy-kg/" in metadata
    assert "Classifier: Topic :: Scientific/Engineering :: Medical Science Apps." in metadata
    # One copy in the repository: the package folder holds no artefacts of its own.
    assert not (ROOT / "src" / "neuropathy_kg" / "artefacts").exists()


def test_home_prefers_the_environment(monkeypatch, tmp_path):
    from neuropathy_kg import guideline

    assert guideline.home() == ROOT  # an editable install reads the checkout
    monkeypatch.setenv("NEUROPATHY_KG_HOME", str(tmp_path))
    with pytest.raises(guideline.ArtefactsNotFound, match="NEUROPATHY_KG_HOME"):
        guideline.home()
    for folder in ("ontology", "shapes", "queries"):
        (tmp_path / folder).mkdir()
    assert guideline.home() == tmp_path


def test_python_dash_m_is_the_command(tmp_path):
    ran = subprocess.run([sys.executable, "-m", "neuropathy_kg", "recommend", "--as-of", AS_OF, "--format", "json",
                          str(EXAMPLES / "03-renal-impairment.ttl")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == _json_of("recommend", "--as-of", AS_OF, "--format", "json", str(EXAMPLES / "03-renal-impairment.ttl"))
    usage = subprocess.run([sys.executable, "-m", "neuropathy_kg", "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "Usage: neuropathy-kg" in usage.stdout


def test_import_is_light():
    """``import neuropathy_kg`` loads neither rdflib, the pipeline, pyoxigraph, pySHACL nor click; its
    names (NKG, the library) are there on first use."""
    code = ("import sys, neuropathy_kg; heavy = [m for m in ('rdflib', 'neuropathy_kg.terms', 'neuropathy_kg.pipeline', "
            "'neuropathy_kg.api', 'pyshacl', 'pyoxigraph', 'click') if m in sys.modules]; print(heavy); "
            "from neuropathy_kg import NKG; print(NKG.Patient, 'rdflib' in sys.modules)")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert ran.stdout.splitlines() == ["[]", "https://w3id.org/neuropathy-kg/Patient True"], ran.stdout + ran.stderr
    assert callable(neuropathy_kg.recommend) and issubclass(neuropathy_kg.InputError, Exception)
    assert neuropathy_kg.NKG.Patient is neuropathy_kg.NKG.Patient == rdflib.URIRef("https://w3id.org/neuropathy-kg/Patient")


def _encoded(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("command", ["recommend", "validate"])
def test_api_equals_the_json_output(command):
    function = getattr(neuropathy_kg, command)
    document = function([EXAMPLES], as_of=AS_OF)
    assert document["summary"] == {"patients": 8, "failedPatients": 0, "failedInputs": 0}
    assert _encoded(document) == _json_of(command, "--as-of", AS_OF, "--format", "json", str(EXAMPLES))
    assert function(str(EXAMPLES), as_of=__import__("datetime").date(2026, 11, 24)) == document


BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1950-02-01", "gender": "female"}},
    {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "230572002"}]},
                  "clinicalStatus": {"coding": [{"code": "active"}]}}},
]}


def test_api_reads_fhir_json_in_memory(tmp_path):
    """A Bundle dict, a list of resource dicts, and the same Bundle as a file give the same document
    (but for the input's name in findings)."""
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(BUNDLE))
    from_file = neuropathy_kg.recommend(path, as_of=AS_OF)
    from_bundle = neuropathy_kg.recommend(BUNDLE, as_of=AS_OF)
    from_resources = neuropathy_kg.recommend([e["resource"] for e in BUNDLE["entry"]], as_of=AS_OF)
    assert from_bundle["summary"]["patients"] == 1
    assert [p["patient"] for p in from_bundle["patients"]] == ["p1"]
    assert from_bundle == from_file
    assert from_resources["patients"][0]["patient"] == "p1"
    # Resources given one by one are one patient, as the lines of an NDJSON export are: the same result.
    assert from_resources["summary"]["patients"] == 1 and from_resources["patients"] == from_bundle["patients"]
    # Both inputs at once: paths and dicts mixed, in order.
    both = neuropathy_kg.validate([EXAMPLES / "03-renal-impairment.ttl", BUNDLE], as_of=AS_OF)
    assert [p["patient"] for p in both["patients"]][-1] == "p1" and both["summary"]["patients"] == 2


def test_api_bad_input_raises_or_reports(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(neuropathy_kg.InputError, match="broken.json"):
        neuropathy_kg.recommend([broken, EXAMPLES / "03-renal-impairment.ttl"], as_of=AS_OF)
    reported = neuropathy_kg.recommend([broken, EXAMPLES / "03-renal-impairment.ttl"], as_of=AS_OF, errors="report")
    assert reported["summary"]["failedInputs"] == 1 and "broken.json" in reported["summary"]["errors"][0]
    assert [p["patient"] for p in reported["patients"]] == ["carmen"]
    with pytest.raises(TypeError):
        neuropathy_kg.recommend([42], as_of=AS_OF)
    with pytest.raises(ValueError, match="not a date"):
        neuropathy_kg.recommend(EXAMPLES, as_of="24/11/2026")


@pytest.mark.parametrize("engine", ["oxigraph", "rdflib"])
def test_api_query_forms(engine):
    rows = neuropathy_kg.query("patient-facts", [EXAMPLES / "03-renal-impairment.ttl"], as_of=AS_OF, engine=engine)
    assert len(rows) == 1 and rows[0]["renalBand"] == "15-29" and float(rows[0]["creatinineClearance"]) == 25
    assert rows[0]["patient"].startswith("https://")
    ask = "PREFIX nkg: <https://w3id.org/neuropathy-kg/> ASK { ?p a nkg:Patient }"
    assert neuropathy_kg.query(ask, BUNDLE, engine=engine) is True
    assert neuropathy_kg.query(ask, engine=engine) is False
    graph = neuropathy_kg.query("PREFIX nkg: <https://w3id.org/neuropathy-kg/> CONSTRUCT { ?b nkg:bandCode ?c } "
                                "WHERE { ?b a nkg:RenalBand ; nkg:bandCode ?c }", engine=engine)
    assert isinstance(graph, rdflib.Graph) and sorted(map(str, graph.objects())) == ["15-29", "30-59", "<15", ">=60"]


def test_no_literal_tracebacks_reach_stderr(tmp_path, capfd):
    """An ill-typed literal is a data finding, not an rdflib traceback, through the library too."""
    bad = tmp_path / "bad.ttl"
    text = (EXAMPLES / "03-renal-impairment.ttl").read_text()
    assert '"1951-09-30"^^xsd:date' in text
    bad.write_text(text.replace('"1951-09-30"^^xsd:date', '"19x1-09-30"^^xsd:date'))
    document = neuropathy_kg.validate(bad, as_of=AS_OF)
    assert document["summary"]["patients"] == 1
    captured = capfd.readouterr()
    assert "Failed to convert Literal" not in captured.err and "Traceback" not in captured.err


def test_api_format_fhir_is_the_commands_bundle():
    from neuropathy_kg.apply import recommend_bundle, validate_bundle

    recommended = neuropathy_kg.recommend(BUNDLE, as_of=AS_OF)
    assert neuropathy_kg.recommend(BUNDLE, as_of=AS_OF, format="fhir") == recommend_bundle(recommended)
    validated = neuropathy_kg.validate(BUNDLE, as_of=AS_OF)
    assert neuropathy_kg.validate(BUNDLE, as_of=AS_OF, format="fhir") == validate_bundle(validated)
    assert neuropathy_kg.recommend(BUNDLE, as_of=AS_OF, format="fhir")["resourceType"] == "Bundle"
    with pytest.raises(ValueError, match="format"):
        neuropathy_kg.recommend(BUNDLE, as_of=AS_OF, format="text")


@pytest.mark.parametrize("text", ["SELEKT * WHERE {}", "DELETE WHERE { ?s ?p ?o }"])
def test_api_query_that_is_not_sparql_is_a_value_error(text):
    """review2 entry 14: pyparsing's own exception reached the caller."""
    with pytest.raises(ValueError, match="not a SPARQL query") as raised:
        neuropathy_kg.query(text)
    assert type(raised.value) is ValueError and raised.value.__cause__ is None


@pytest.mark.parametrize("given, name", [(b'{"resourceType":"Patient","id":"a"}', "bytes"), (bytearray(b"{}"), "bytearray"),
                                         (42, "int"), ([b"{}"], "bytes")])
def test_api_inputs_of_the_wrong_type_are_a_type_error_naming_it(given, name):
    with pytest.raises(TypeError, match=f"^inputs: {name} is neither a path nor FHIR JSON"):
        neuropathy_kg.recommend(given, as_of="2026-11-24")


@pytest.mark.parametrize("function", ["recommend", "validate"])
@pytest.mark.parametrize("given", [None, [], ()])
def test_api_a_run_with_no_inputs_is_refused_as_on_the_command_line(function, given):
    with pytest.raises(ValueError, match="no inputs"):
        getattr(neuropathy_kg, function)(given, as_of="2026-11-24")
