"""Publishing the guideline graph: HTML documentation and release files.

``docs``: pyLODE documents the ontology's classes and properties (ontology.html); catalogue.html lists
every named individual (the catalogue's actions, pitfalls and data findings, phenotypes, drugs, dose
tables, criteria, sources) with its label, definition, citations and external codes.
``release``: the merged ontology as Turtle, RDF/XML and JSON-LD with its version IRI, and SHA-256 sums.
"""

from __future__ import annotations

import hashlib
import html
import logging
from pathlib import Path

import rdflib
from rdflib import OWL, RDF, RDFS
from rdflib.namespace import DCTERMS, SKOS

from . import NKG, __version__, guideline

ONTOLOGY = rdflib.URIRef("https://w3id.org/neuropathy-kg/ontology")
CITO = rdflib.Namespace("http://purl.org/spar/cito/")
RELEASE_FORMATS = (("ontology.ttl", "turtle"), ("ontology.owl", "xml"), ("ontology.jsonld", "json-ld"))


class PublishError(Exception):
    """A publishing step cannot run; the message is one line."""


def release_iri(version: str) -> rdflib.URIRef:
    return rdflib.URIRef(f"https://w3id.org/neuropathy-kg/releases/{version}/ontology")


def merged_ontology(version: str | None = None) -> rdflib.Graph:
    """ontology/*.ttl as one graph, with the version IRI and version info of ``version`` (default: current)."""
    graph = rdflib.Graph()
    graph += guideline.ontology()
    for prefix, namespace in (("nkg", NKG), ("owl", OWL), ("skos", SKOS), ("dcterms", DCTERMS), ("cito", CITO)):
        graph.bind(prefix, namespace)
    if version:
        graph.set((ONTOLOGY, OWL.versionIRI, release_iri(version)))
        graph.set((ONTOLOGY, OWL.versionInfo, rdflib.Literal(version)))
        graph.set((NKG.guideline, OWL.versionInfo, rdflib.Literal(version)))
    return graph


def release(output: Path, version: str | None = None) -> list[Path]:
    """Write the release serialisations and SHA256SUMS into ``output``; returns the files written."""
    version = version or __version__
    graph = merged_ontology(version)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fmt in RELEASE_FORMATS:
        path = output / name
        _write_atomically(path, graph.serialize(format=fmt, encoding="utf-8"))
        written.append(path)
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in written)
    _write_atomically(output / "SHA256SUMS", sums.encode())
    return [*written, output / "SHA256SUMS"]


def docs(output: Path) -> list[Path]:
    """Write index.html, ontology.html (pyLODE) and catalogue.html into ``output``."""
    try:
        from pylode import OntPub
    except ImportError:  # pragma: no cover - depends on the installation
        raise PublishError("pyLODE is not installed: pip install 'neuropathy-kg[docs]'") from None
    logging.getLogger().setLevel(logging.WARNING)  # pyLODE logs its progress at INFO and DEBUG
    output.mkdir(parents=True, exist_ok=True)
    graph = merged_ontology()
    ontology_page = output / "ontology.html"
    try:
        OntPub(ontology=graph).make_html(destination=ontology_page)
    except Exception as error:  # pyLODE raises its own types for unsupported input
        raise PublishError(f"pyLODE could not document the ontology: {' '.join(str(error).split())[:200]}") from None
    catalogue_page = output / "catalogue.html"
    _write_atomically(catalogue_page, catalogue_html(graph).encode())
    index = output / "index.html"
    title = html.escape(str(graph.value(ONTOLOGY, DCTERMS.title)))
    _write_atomically(index, (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>Version {html.escape(str(graph.value(ONTOLOGY, OWL.versionInfo)))}</p><ul>"
        "<li><a href='ontology.html'>Ontology: classes and properties</a> (pyLODE)</li>"
        "<li><a href='catalogue.html'>Catalogue: actions, pitfalls, data findings, concepts, drugs, dose tables, "
        "sources</a></li></ul></body></html>").encode())
    return [index, ontology_page, catalogue_page]


def catalogue_html(graph: rdflib.Graph) -> str:
    """One table per kind of named individual, each row a term with its documentation."""
    groups: dict[str, list[rdflib.URIRef]] = {}
    for individual in sorted(set(graph.subjects(RDF.type, OWL.NamedIndividual))):
        kinds = sorted(str(graph.value(c, RDFS.label) or c) for c in graph.objects(individual, RDF.type) if c != OWL.NamedIndividual)
        groups.setdefault(kinds[0] if kinds else "individual", []).append(individual)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>neuropathy-kg catalogue</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
             "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}</style></head><body>",
             "<h1>neuropathy-kg catalogue</h1>"]
    for kind in sorted(groups):
        parts.append(f"<h2>{html.escape(kind)}</h2><table><tr><th>IRI</th><th>label</th><th>definition</th>"
                     "<th>citations</th><th>codes</th></tr>")
        for individual in groups[kind]:
            cites = sorted(str(graph.value(s, DCTERMS.identifier) or s) for s in graph.objects(individual, CITO.citesAsEvidence))
            codes = sorted(str(c) for p in (SKOS.exactMatch, SKOS.closeMatch) for c in graph.objects(individual, p))
            local = str(individual)[len(str(NKG)):] if str(individual).startswith(str(NKG)) else str(individual)
            parts.append(
                f"<tr id='{html.escape(local)}'><td><code>{html.escape(str(individual))}</code></td>"
                f"<td>{html.escape(str(graph.value(individual, RDFS.label) or ''))}</td>"
                f"<td>{html.escape(str(graph.value(individual, SKOS.definition) or ''))}</td>"
                f"<td>{html.escape(', '.join(cites))}</td><td>{html.escape(' '.join(codes))}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
