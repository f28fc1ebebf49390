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
from .output import write_atomically as _write_atomically

ONTOLOGY = rdflib.URIRef("https://w3id.org/neuropathy-kg/ontology")
PATIENT_MODEL = rdflib.URIRef("https://w3id.org/neuropathy-kg/patient-model")
CITO = rdflib.Namespace("http://purl.org/spar/cito/")
#: Each release file's suffix and rdflib format; the suffixes are what the content negotiation serves.
RELEASE_FORMATS = ((".ttl", "turtle"), (".owl", "xml"), (".jsonld", "json-ld"), (".nt", "nt"))
#: Apache rules (mod_rewrite) for a release folder served at /neuropathy-kg/releases/X.Y.Z/ and as the
#: current version: the two ontology IRIs by Accept header, and every term IRI (a slash IRI) with a
#: 303 to the document that describes it (the ontology for RDF clients, its catalogue row for browsers).
HTACCESS = r"""# neuropathy-kg {version}: content negotiation for the ontology and term IRIs (Apache mod_rewrite).
# Serve this folder at https://w3id.org/neuropathy-kg/releases/{version}/ (and as the current version, to
# which https://w3id.org/neuropathy-kg/ redirects), with the HTML documentation in docs/ beside it.
AddType text/turtle .ttl
AddType application/rdf+xml .owl
AddType application/ld+json .jsonld
AddType application/n-triples .nt
RewriteEngine on
RewriteCond %{{HTTP_ACCEPT}} text/turtle
RewriteRule ^(ontology|patient-model)$ $1.ttl [L]
RewriteCond %{{HTTP_ACCEPT}} application/rdf\+xml
RewriteRule ^(ontology|patient-model)$ $1.owl [L]
RewriteCond %{{HTTP_ACCEPT}} application/ld\+json
RewriteRule ^(ontology|patient-model)$ $1.jsonld [L]
RewriteCond %{{HTTP_ACCEPT}} application/n-triples
RewriteRule ^(ontology|patient-model)$ $1.nt [L]
RewriteRule ^(ontology|patient-model)$ docs/index.html [R=303,L]
RewriteCond %{{HTTP_ACCEPT}} (text/turtle|application/rdf\+xml|application/ld\+json|application/n-triples)
RewriteRule ^([A-Za-z0-9-]+)$ ontology [R=303,L]
RewriteRule ^([A-Za-z0-9-]+)$ docs/catalogue.html#$1 [R=303,NE,L]
"""


class PublishError(Exception):
    """A publishing step cannot run; the message is one line."""


def release_iri(version: str, name: str = "ontology") -> rdflib.URIRef:
    return rdflib.URIRef(f"https://w3id.org/neuropathy-kg/releases/{version}/{name}")


def _stamp(graph: rdflib.Graph, version: str) -> rdflib.Graph:
    """Version IRIs and version info of ``version`` on whichever of the two ontologies the graph holds."""
    for ontology, name in ((ONTOLOGY, "ontology"), (PATIENT_MODEL, "patient-model")):
        if (ontology, RDF.type, OWL.Ontology) in graph:
            graph.set((ontology, OWL.versionIRI, release_iri(version, name)))
            graph.set((ontology, OWL.versionInfo, rdflib.Literal(version)))
    if (ONTOLOGY, RDF.type, OWL.Ontology) in graph:
        graph.set((ONTOLOGY, OWL.imports, release_iri(version, "patient-model")))
        graph.set((NKG.guideline, OWL.versionInfo, rdflib.Literal(version)))
    return graph


def patient_model(version: str | None = None) -> rdflib.Graph:
    """The patient vocabulary alone (ontology/patient-model.ttl), for reuse without the guideline."""
    graph = rdflib.Graph().parse(guideline.home() / "ontology" / "patient-model.ttl", format="turtle")
    return _stamp(graph, version) if version else graph


def merged_ontology(version: str | None = None) -> rdflib.Graph:
    """ontology/*.ttl as one graph, with the version IRI and version info of ``version`` (default: current)."""
    graph = rdflib.Graph()
    graph += guideline.ontology()
    for prefix, namespace in (("nkg", NKG), ("owl", OWL), ("skos", SKOS), ("dcterms", DCTERMS), ("cito", CITO)):
        graph.bind(prefix, namespace)
    return _stamp(graph, version) if version else graph


def release(output: Path, version: str | None = None) -> list[Path]:
    """Write the release into ``output``: the ontology (everything, the patient vocabulary included) and the
    patient vocabulary alone, each as Turtle, RDF/XML, JSON-LD and N-Triples with its version IRI; the
    content-negotiation rules (.htaccess); SHA256SUMS. Returns the files written."""
    version = version or __version__
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, graph in (("ontology", merged_ontology(version)), ("patient-model", patient_model(version))):
        for suffix, fmt in RELEASE_FORMATS:
            path = output / f"{stem}{suffix}"
            _write_atomically(path, graph.serialize(format=fmt, encoding="utf-8"))
            written.append(path)
    _write_atomically(output / ".htaccess", HTACCESS.format(version=version).encode())
    written.append(output / ".htaccess")
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

