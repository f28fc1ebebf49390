"""The guideline graph checks itself: every catalogue id (public API, listed here so a rename fails)
has its term with label, definition and citations, a query or shape that derives it, and a header that
names it; every term has a label and a definition; every citation resolves; dose tables are complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import rdflib
from rdflib.namespace import DCTERMS, OWL, RDF, RDFS, SH, SKOS

from neuropathy_kg import NKG, guideline

ROOT = Path(__file__).resolve().parents[1]
CITO = rdflib.Namespace("http://purl.org/spar/cito/")
PROV = rdflib.Namespace("http://www.w3.org/ns/prov#")

PHENOTYPES = ["asymmetric-diabetic-neuropathy", "symmetric-diabetic-polyneuropathy"]
ACTIONS = [
    "document-baseline-measures", "neurologic-exam-for-symmetric-progression", "repeat-ivig",
    "monitor-ivig-adverse-effects", "consider-plasma-exchange", "standard-pharmacologic-management",
    "optimize-glycemic-control", "address-cardiovascular-risk", "start-pregabalin", "titrate-pregabalin",
    "start-duloxetine", "titrate-duloxetine", "start-gabapentin", "combination-therapy", "lidocaine-patch",
    "reassess-pain-2-weeks", "reassess-pain-1-month", "assess-motor-function-1-month",
    "monitor-fasting-glucose-daily", "monitor-hba1c-every-3-months", "annual-monofilament-test",
    "screen-sleep-and-mood", "refer-spinal-cord-stimulation", "consider-corticosteroids",
]
PITFALLS = {
    "withheld-repeat-ivig": "violation", "ivig-in-symmetric-polyneuropathy": "violation",
    "subtherapeutic-pregabalin": "violation", "pregabalin-above-300-no-added-benefit": "info",
    "dose-above-maximum": "violation", "missing-renal-dose-adjustment": "violation",
    "glycemic-control-neglected": "violation", "duloxetine-in-hepatic-disease": "violation",
    "duloxetine-in-severe-renal-impairment": "warning", "opioid-as-first-line": "violation",
    "ivig-dose-off-protocol": "warning",
}


@pytest.fixture(scope="module")
def onto() -> rdflib.Graph:
    return guideline.ontology()


@pytest.fixture(scope="module")
def shapes() -> rdflib.Graph:
    return guideline.shapes()


def query_files() -> list[Path]:
    return sorted((ROOT / "queries").rglob("*.r[qu]"))


def shape_files() -> list[Path]:
    return sorted((ROOT / "shapes").rglob("*.ttl"))


def test_ontology_header(onto):
    ontology = rdflib.URIRef("https://w3id.org/neuropathy-kg/ontology")
    assert (ontology, RDF.type, OWL.Ontology) in onto
    assert str(onto.value(ontology, OWL.versionIRI)).endswith("/0.1.0/ontology")
    assert str(NKG) == "https://w3id.org/neuropathy-kg/"


@pytest.mark.parametrize("term", PHENOTYPES + ACTIONS + list(PITFALLS))
def test_catalogue_entry_is_described_and_cited(onto, term):
    iri = NKG[term]
    assert onto.value(iri, RDFS.label) is not None
    assert onto.value(iri, SKOS.definition) is not None
    sources = list(onto.objects(iri, CITO.citesAsEvidence))
    assert sources, "at least one citation"
    for source in sources:
        assert (source, RDF.type, NKG.Source) in onto and onto.value(source, DCTERMS.identifier) is not None
    if term not in PHENOTYPES:
        assert str(onto.value(iri, DCTERMS.identifier)) == term
        statement = onto.value(iri, PROV.wasDerivedFrom)
        assert (statement, RDF.type, NKG.GuidelineStatement) in onto
        assert onto.value(statement, NKG.section) is not None


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_has_a_query_naming_it(action):
    serving = [p for p in (ROOT / "queries" / "actions").glob("*.rq")
               if re.search(rf"^# Serves:.*\b{re.escape(action)}\b", p.read_text(), re.M)]
    assert serving, f"no queries/actions/*.rq says it serves {action}"
    assert any(f"nkg:{action}" in p.read_text() for p in serving)


@pytest.mark.parametrize(("pitfall", "severity"), PITFALLS.items())
def test_every_pitfall_has_a_shape_with_its_severity(onto, shapes, pitfall, severity):
    assert str(onto.value(NKG[pitfall], NKG.severity)).endswith(severity.capitalize())
    implementing = list(shapes.subjects(NKG.implements, NKG[pitfall]))
    assert implementing
    main = NKG[f"shape-{pitfall}"]
    assert main in implementing and str(shapes.value(main, SH.severity)).endswith(severity.capitalize())


def test_every_implemented_id_is_a_catalogue_entry(onto, shapes):
    for entry in set(shapes.objects(None, NKG.implements)):
        assert onto.value(entry, DCTERMS.identifier) is not None, entry
        assert str(entry).startswith(str(NKG))


def test_data_finding_ids_start_with_data(onto):
    for finding in onto.subjects(RDF.type, NKG.DataFinding):
        assert str(onto.value(finding, DCTERMS.identifier)).startswith("data-")


@pytest.mark.parametrize("path", query_files(), ids=lambda p: p.name)
def test_query_header(path):
    head = path.read_text().split("PREFIX", 1)[0]
    assert head.startswith("# Derives:") and "# Serves:" in head, path


@pytest.mark.parametrize("path", shape_files(), ids=lambda p: p.name)
def test_shape_header(path):
    head = path.read_text().split("@prefix", 1)[0]
    if path.parent.name == "guideline":
        assert head.startswith("# Shape (guideline graph):")
        return
    assert head.startswith("# Shape:") or path.name == "prefixes.ttl"
    if path.name != "prefixes.ttl":
        ident = re.search(r"# Catalogue id: ([a-z0-9-]+)", head).group(1)
        assert f"nkg:implements nkg:{ident} " in path.read_text() or f"nkg:implements nkg:{ident} ;" in path.read_text()


def test_every_term_has_label_and_definition(onto):
    declared = set()
    for kind in (OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty, OWL.NamedIndividual):
        declared |= {s for s in onto.subjects(RDF.type, kind) if isinstance(s, rdflib.URIRef) and str(s).startswith(str(NKG))}
    missing = sorted(str(t) for t in declared if onto.value(t, RDFS.label) is None or onto.value(t, SKOS.definition) is None)
    assert not missing
    assert len(declared) > 200


def test_dose_tables_cover_every_band(onto):
    bands = set(onto.subjects(RDF.type, NKG.RenalBand))
    assert len(bands) == 4
    for drug in (NKG.pregabalin, NKG.gabapentin):
        covered = {onto.value(spec, NKG.forRenalBand) for spec in onto.subjects(NKG.drug, drug)} - {None}
        assert covered == bands, drug
        for spec in onto.subjects(NKG.drug, drug):
            if onto.value(spec, NKG.forRenalBand) is not None:
                values = [float(onto.value(spec, p)) for p in (NKG.minDailyDose, NKG.adequateTrialDailyDose, NKG.maxDailyDose)]
                assert values == sorted(values), spec
                assert str(onto.value(spec, NKG.unit)) == "mg"
                assert any(str(s).startswith(str(NKG.uspi)) or "uspi" in str(s) for s in onto.objects(spec, CITO.citesAsEvidence))


def test_catalogue_maxima_match_the_spec(onto):
    def band_value(drug, band, prop):
        for spec in onto.subjects(NKG.drug, NKG[drug]):
            if onto.value(spec, NKG.forRenalBand) == NKG[f"renal-band-{band}"]:
                return float(onto.value(spec, prop))
    assert [band_value("pregabalin", b, NKG.maxDailyDose) for b in ("ge60", "30-59", "15-29", "lt15")] == [600, 300, 150, 75]
    assert [band_value("gabapentin", b, NKG.maxDailyDose) for b in ("ge60", "30-59", "15-29", "lt15")] == [3600, 1400, 700, 300]
    assert [band_value("pregabalin", b, NKG.adequateTrialDailyDose) for b in ("ge60", "30-59", "15-29", "lt15")] == [300, 150, 75, 25]
    assert float(onto.value(NKG["dose-duloxetine"], NKG.maxDailyDose)) == 120
    assert float(onto.value(NKG["dose-ivig"], NKG.amountPerKgPerDay)) == 0.4


def test_python_holds_no_clinical_number():
    """The package moves data; thresholds and doses live in ontology/, queries/ and shapes/."""
    suspicious = re.compile(r"\b(0\.4|0\.7|0\.85|88\.42|140|300|600|3600|120)\b")
    for path in (ROOT / "src" / "neuropathy_kg").glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            assert not suspicious.search(code), f"{path.name}:{number}: {line.strip()}"



def test_guideline_graph_meets_its_shapes():
    from neuropathy_kg.pipeline import validate_guideline

    document = validate_guideline()
    assert document["findings"] == [] and document["conforms"] is True


@pytest.mark.parametrize(("remove", "message"), [
    ((NKG["repeat-ivig"], CITO.citesAsEvidence, None), "at least one citation"),
    ((NKG["withheld-repeat-ivig"], PROV.wasDerivedFrom, None), "guideline statement"),
    ((NKG["dose-pregabalin-renal-30-59"], NKG.unit, None), "UCUM unit"),
    ((NKG["dose-ivig"], NKG.timesPerDay, None), "frequency"),
    ((NKG["ref-9"], None, None), "resolve to a source"),
    ((NKG.weightKg, SKOS.definition, None), "no label or no definition"),
])
def test_a_broken_guideline_graph_fails_with_a_clear_message(onto, remove, message):
    from neuropathy_kg.pipeline import validate_guideline

    broken = rdflib.Graph()
    broken += onto
    broken.remove(remove)
    document = validate_guideline(broken)
    assert document["conforms"] is False
    assert any(message in f["message"] for f in document["findings"]), [f["message"] for f in document["findings"]]


@pytest.mark.parametrize("copied", ["dose-gabapentin-renal-30-59", "dose-duloxetine"])
def test_two_dose_specifications_for_one_drug_and_band_fail(onto, copied):
    """A dose rule joins a patient's dose to the one specification of its drug and band: a second one
    (here a copy of a banded and of a whole-drug specification) would make the maximum a patient is told
    depend on row order."""
    from neuropathy_kg.pipeline import validate_guideline

    broken = rdflib.Graph()
    broken += onto
    twin = NKG[f"{copied}-twin"]
    for _s, p, o in onto.triples((NKG[copied], None, None)):
        broken.add((twin, p, o))
    document = validate_guideline(broken)
    assert document["conforms"] is False
    assert any("same drug and renal band" in f["message"] for f in document["findings"]), [f["message"] for f in document["findings"]]


def test_validate_guideline_command():
    from click.testing import CliRunner
    from neuropathy_kg.cli import main

    result = CliRunner().invoke(main, ["validate", "--guideline", "--format", "json"])
    assert result.exit_code == 0 and '"conforms": true' in result.stdout
