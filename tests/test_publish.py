"""Publishing: the docs command documents every term; the release recipe writes three equivalent
serialisations with the version IRI and correct checksums; the version is one number everywhere; the
ontology stays within OWL 2 DL (structural checks the reasoner does not make)."""

from __future__ import annotations

import hashlib
import re
import tomllib

import pytest
import rdflib
from click.testing import CliRunner
from rdflib import OWL, RDF, RDFS, XSD
from rdflib.compare import isomorphic

from conftest import ROOT
from neuropathy_kg import NKG, __version__, guideline
from neuropathy_kg.cli import main

OWL2_DATATYPES = {XSD.string, XSD.boolean, XSD.decimal, XSD.integer, XSD.double, XSD.float, XSD.dateTime,
                  XSD.anyURI, RDF.langString, RDF.PlainLiteral, None}


def nkg_terms(graph: rdflib.Graph) -> set[rdflib.URIRef]:
    terms = set()
    for kind in (OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty, OWL.AnnotationProperty, OWL.NamedIndividual):
        terms |= {t for t in graph.subjects(RDF.type, kind) if isinstance(t, rdflib.URIRef) and str(t).startswith(str(NKG))}
    return terms


def test_docs_list_every_term(tmp_path):
    pytest.importorskip("pylode")
    result = CliRunner().invoke(main, ["docs", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    pages = "".join((tmp_path / name).read_text() for name in ("ontology.html", "patient-model.html", "catalogue.html"))
    missing = sorted(str(t) for t in nkg_terms(guideline.ontology()) if str(t) not in pages)
    assert missing == []
    assert "Subtherapeutic pregabalin" in pages and "USPI-pregabalin" in pages


def test_docs_one_page_per_ontology_linked_both_ways(tmp_path):
    """The guideline ontology and the patient vocabulary each have a page; catalogue rows carry their
    catalogue id as a link, kinds link to their class's section, and classes link back."""
    pytest.importorskip("pylode")
    result = CliRunner().invoke(main, ["docs", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    guideline_page = (tmp_path / "ontology.html").read_text()
    patient_page = (tmp_path / "patient-model.html").read_text()
    catalogue = (tmp_path / "catalogue.html").read_text()
    assert "neuropathy-kg patient vocabulary" in patient_page and "neuropathy-kg patient vocabulary" not in guideline_page
    assert "https://w3id.org/neuropathy-kg/Patient" in patient_page
    # The patient vocabulary's classes are documented on its page only.
    section = '<div class="property entity" id="patient">'
    assert section in patient_page and section not in guideline_page
    # Every catalogue entry's row: id anchor = local name, the catalogue id linking to it.
    for entry in guideline.catalogue().values():
        local = entry.iri.rsplit("/", 1)[-1]
        assert f'<tr id="{local}"><td><a href="#{local}"><code>{entry.id}</code></a>' in catalogue, entry.id
    # Kinds link to the ontology pages, and those pages link back to the catalogue's kinds.
    for page, text in (("ontology.html", guideline_page), ("patient-model.html", patient_page)):
        fragments = re.findall(rf'<a href="{page}#([^"]+)">class</a>', catalogue)
        assert fragments, page
        for fragment in fragments:
            assert f'id="{fragment}"><p class="catalogue"><a href="catalogue.html#kind-' in text, (page, fragment)
    assert "<script" not in catalogue  # jinja2 autoescaping: labels and definitions are text


def test_docs_are_reproducible_and_link_only_to_what_exists(tmp_path):
    """Two runs in interpreters of different string hashing write the same bytes (pyLODE's order of
    terms and of intersection members, blank-node ids: review 2026-12-02 #17); no link goes to a literal
    (``value true``) or a blank node; the enumeration of a restriction is shown with its members,
    each linked to its catalogue row."""
    pytest.importorskip("pylode")
    import os
    import subprocess
    import sys

    pages = {}
    for seed in ("1", "2"):
        folder = tmp_path / seed
        ran = subprocess.run([sys.executable, "-m", "neuropathy_kg", "docs", "--output", str(folder)], capture_output=True,
                             text=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": seed})
        assert ran.returncode == 0, ran.stderr
        pages[seed] = {p.name: p.read_bytes() for p in sorted(folder.glob("*.html"))}
    assert pages["1"] == pages["2"]
    text = pages["1"]["ontology.html"].decode() + pages["1"]["patient-model.html"].decode()
    catalogue = pages["1"]["catalogue.html"].decode()
    assert 'href="true"' not in text and not re.search(r"\bn[0-9a-f]{32}b\d+\b", text)
    for href in set(re.findall(r'<a href="([^"]+)"', text)):  # every link: a web IRI, a page's section, another page
        assert href.startswith(("http://", "https://", "#", "catalogue.html#", "ontology.html#", "patient-model.html#")), href
        if href.startswith("catalogue.html#"):
            assert f'<tr id="{href.split("#", 1)[1]}">' in catalogue or f'id="{href.split("#", 1)[1]}"' in catalogue, href
    # ReducedRenalFunctionPatient: renalBand some {30-59, 15-29, <15}, from the Turtle's owl:oneOf
    members = ", ".join(f'<a href="catalogue.html#renal-band-{b}">nkg:renal-band-{b}</a>' for b in ("30-59", "15-29", "lt15"))
    assert f'<span class="cardinality">one of</span> {{{members}}}' in text
    local = re.compile(r'href="#([^"]+)"')
    ids = set(re.findall(r'id="([^"]+)"', text))
    assert not [f for f in set(local.findall(text)) if f not in ids]


RELEASE_IRI = "https://w3id.org/neuropathy-kg/releases/9.8.7/"


@pytest.mark.parametrize("stem", ["ontology", "patient-model"])
def test_release_recipe(tmp_path, stem):
    result = CliRunner().invoke(main, ["release", "--output", str(tmp_path), "--version", "9.8.7"])
    assert result.exit_code == 0, result.stderr
    graphs = {}
    for suffix, fmt in ((".ttl", "turtle"), (".owl", "xml"), (".jsonld", "json-ld"), (".nt", "nt")):
        graphs[suffix] = rdflib.Graph().parse(tmp_path / f"{stem}{suffix}", format=fmt)
        ontology = rdflib.URIRef(f"https://w3id.org/neuropathy-kg/{stem}")
        assert str(graphs[suffix].value(ontology, OWL.versionIRI)) == RELEASE_IRI + stem
        assert str(graphs[suffix].value(ontology, OWL.versionInfo)) == "9.8.7"
        assert isomorphic(graphs[".ttl"], graphs[suffix]), suffix
    if stem == "ontology":
        assert str(graphs[".ttl"].value(ontology, OWL.imports)) == RELEASE_IRI + "patient-model"
    else:  # the patient vocabulary alone: no guideline content comes with it
        assert (NKG.Patient, RDF.type, OWL.Class) in graphs[".ttl"] and (NKG["repeat-ivig"], None, None) not in graphs[".ttl"]
    rules = (tmp_path / ".htaccess").read_text()
    assert "RewriteRule ^(ontology|patient-model)$ $1.ttl [L]" in rules and "9.8.7" in rules
    listed = set()
    for line in (tmp_path / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        listed.add(name)
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest
    assert {f"{stem}{suffix}" for suffix in graphs} | {".htaccess"} <= listed


def test_one_version_everywhere():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    onto = guideline.ontology()
    ontology = rdflib.URIRef("https://w3id.org/neuropathy-kg/ontology")
    assert project == __version__ == str(onto.value(ontology, OWL.versionInfo)) == str(onto.value(NKG.guideline, OWL.versionInfo))
    assert str(onto.value(ontology, OWL.versionIRI)) == f"https://w3id.org/neuropathy-kg/releases/{__version__}/ontology"
    patient_model = rdflib.URIRef("https://w3id.org/neuropathy-kg/patient-model")
    versioned = f"https://w3id.org/neuropathy-kg/releases/{__version__}/patient-model"
    assert str(onto.value(patient_model, OWL.versionIRI)) == versioned == str(onto.value(ontology, OWL.imports))
    assert str(onto.value(patient_model, OWL.versionInfo)) == __version__


@pytest.mark.parametrize("part", ["whole ontology", "patient vocabulary alone"])
def test_owl2_dl_structure(part):
    """OWL 2 DL: every property has one kind; no term is both a class and an individual or property;
    object properties take resources and datatype properties literals; literals use OWL 2 datatypes.
    The patient vocabulary must meet this on its own, for those who reuse it without the guideline."""
    from neuropathy_kg.publish import patient_model

    onto = guideline.ontology() if part == "whole ontology" else patient_model()
    kinds = {}
    for kind in (OWL.ObjectProperty, OWL.DatatypeProperty, OWL.AnnotationProperty):
        for prop in onto.subjects(RDF.type, kind):
            kinds.setdefault(prop, set()).add(kind)
    assert {p: k for p, k in kinds.items() if len(k) > 1} == {}
    classes = {c for c in onto.subjects(RDF.type, OWL.Class) if isinstance(c, rdflib.URIRef)}
    individuals = set(onto.subjects(RDF.type, OWL.NamedIndividual))
    assert classes & individuals == set() and classes & set(kinds) == set() and individuals & set(kinds) == set()
    builtin = (str(RDF), str(RDFS), str(OWL))
    for s, p, o in onto:
        if str(p).startswith(builtin):
            continue
        assert p in kinds, f"undeclared property {p}"
        kind = next(iter(kinds[p]))
        if kind == OWL.ObjectProperty:
            assert not isinstance(o, rdflib.Literal), (s, p, o)
        if kind == OWL.DatatypeProperty:
            assert isinstance(o, rdflib.Literal), (s, p, o)
        if isinstance(o, rdflib.Literal):
            assert o.datatype in OWL2_DATATYPES, (s, p, o)
