"""Publishing: the docs command documents every term; the release recipe writes three equivalent
serialisations with the version IRI and correct checksums; the version is one number everywhere; the
ontology stays within OWL 2 DL (structural checks the reasoner does not make)."""

from __future__ import annotations

import hashlib
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
    pages = (tmp_path / "ontology.html").read_text() + (tmp_path / "catalogue.html").read_text()
    missing = sorted(str(t) for t in nkg_terms(guideline.ontology()) if str(t) not in pages)
    assert missing == []
    assert "Subtherapeutic pregabalin" in pages and "USPI-pregabalin" in pages


def test_release_recipe(tmp_path):
    result = CliRunner().invoke(main, ["release", "--output", str(tmp_path), "--version", "9.8.7"])
    assert result.exit_code == 0, result.stderr
    graphs = {}
    for name, fmt in (("ontology.ttl", "turtle"), ("ontology.owl", "xml"), ("ontology.jsonld", "json-ld")):
        graphs[name] = rdflib.Graph().parse(tmp_path / name, format=fmt)
        ontology = rdflib.URIRef("https://w3id.org/neuropathy-kg/ontology")
        assert str(graphs[name].value(ontology, OWL.versionIRI)) == "https://w3id.org/neuropathy-kg/releases/9.8.7/ontology"
        assert str(graphs[name].value(ontology, OWL.versionInfo)) == "9.8.7"
    assert isomorphic(graphs["ontology.ttl"], graphs["ontology.owl"])
    assert isomorphic(graphs["ontology.ttl"], graphs["ontology.jsonld"])
    for line in (tmp_path / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest


def test_one_version_everywhere():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    onto = guideline.ontology()
    ontology = rdflib.URIRef("https://w3id.org/neuropathy-kg/ontology")
    assert project == __version__ == str(onto.value(ontology, OWL.versionInfo)) == str(onto.value(NKG.guideline, OWL.versionInfo))
    assert str(onto.value(ontology, OWL.versionIRI)) == f"https://w3id.org/neuropathy-kg/releases/{__version__}/ontology"


def test_owl2_dl_structure():
    """OWL 2 DL: every property has one kind; no term is both a class and an individual or property;
    object properties take resources and datatype properties literals; literals use OWL 2 datatypes."""
    onto = guideline.ontology()
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
