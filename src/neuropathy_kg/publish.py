"""Publishing the guideline graph: HTML documentation and release files.

``docs``: pyLODE documents each ontology on a page of its own: the guideline ontology (ontology.html)
and the patient vocabulary (patient-model.html); catalogue.html lists every named individual (the
catalogue's actions, pitfalls and data findings, phenotypes, drugs, dose tables, criteria, sources)
with its catalogue id, label, definition, citations and external codes. Each kind in the catalogue links
to its class on the ontology page, and each class with catalogue entries links back. Pages are jinja2
templates (templates/).
``release``: the merged ontology as Turtle, RDF/XML and JSON-LD with its version IRI, and SHA-256 sums.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
import re
from pathlib import Path

import rdflib
from rdflib import OWL, RDF, RDFS
from rdflib.collection import Collection
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


#: The documented ontologies: (IRI, page, title, what it holds).
ONTOLOGY_PAGES = (
    (ONTOLOGY, "ontology.html", "Guideline ontology", "the guideline's classes and properties"),
    (PATIENT_MODEL, "patient-model.html", "Patient vocabulary", "patients, their records and the derived facts"),
)


def guideline_ontology(version: str | None = None) -> rdflib.Graph:
    """The guideline ontology without the patient vocabulary's own triples (each has a page of its own)."""
    graph = merged_ontology(version)
    graph -= patient_model(version)
    return graph


def _templates():
    try:
        import jinja2
    except ImportError:  # pragma: no cover - depends on the installation
        raise PublishError("jinja2 is not installed: pip install 'neuropathy-kg[docs]'") from None
    return jinja2.Environment(loader=jinja2.PackageLoader("neuropathy_kg", "templates"),
                              autoescape=True, keep_trailing_newline=True)


def docs(output: Path) -> list[Path]:
    """Write index.html, ontology.html and patient-model.html (pyLODE), and catalogue.html into ``output``."""
    try:
        from pylode import OntPub
    except ImportError:  # pragma: no cover - depends on the installation
        raise PublishError("pyLODE is not installed: pip install 'neuropathy-kg[docs]'") from None
    templates = _templates()
    logging.getLogger().setLevel(logging.WARNING)  # pyLODE logs its progress at INFO and DEBUG
    output.mkdir(parents=True, exist_ok=True)
    merged = merged_ontology()
    graphs = {ONTOLOGY: _reproducible(guideline_ontology()), PATIENT_MODEL: _reproducible(patient_model())}
    anchors: dict[str, str] = {}  # term IRI -> page#fragment where pyLODE documents it
    pages_html = {}
    for iri, page, _title, _what in ONTOLOGY_PAGES:
        try:
            publication = OntPub(ontology=graphs[iri])
            with _members_in_list_order():
                pages_html[page] = publication.make_html()
        except Exception as error:  # pyLODE raises its own types for unsupported input
            raise PublishError(f"pyLODE could not document {page}: {' '.join(str(error).split())[:200]}") from None
        for term, fragment in publication.fids.items():
            if fragment and term.startswith(str(NKG)) and term not in anchors:
                anchors[term] = f"{page}#{fragment}"
    groups = catalogue_groups(merged, anchors)
    written = []
    for iri, page, _title, _what in ONTOLOGY_PAGES:
        path = output / page
        text = _with_terms_named(pages_html[page], graphs[iri])
        _write_atomically(path, _with_catalogue_links(text, page, groups).encode())
        written.append(path)
    pages = [{"file": page, "title": title, "what": what} for _iri, page, title, what in ONTOLOGY_PAGES]
    catalogue_page = output / "catalogue.html"
    _write_atomically(catalogue_page, templates.get_template("catalogue.html.j2").render(groups=groups, pages=pages).encode())
    index = output / "index.html"
    _write_atomically(index, templates.get_template("index.html.j2").render(
        title=str(merged.value(ONTOLOGY, DCTERMS.title)), version=str(merged.value(ONTOLOGY, OWL.versionInfo)),
        pages=pages).encode())
    return [index, *written, catalogue_page]


class _ListOrderedSet(dict):
    """A set that iterates in the order its items were added (set's add, on a dict's ordered keys)."""

    def add(self, item) -> None:
        self[item] = None


@contextlib.contextmanager
def _members_in_list_order():
    """pyLODE (3.x, pylode.utils) gathers the members of an owl:intersectionOf or owl:unionOf in a
    ``set()`` of HTML strings, so they appear in an order that changes with Python's string hashing on
    every run ("A and B" one run, "B and A" the next). While pyLODE renders, its module's ``set`` is one
    that keeps the order of the RDF list (the ontology's own order). pylode.utils calls ``set()`` only
    there; a pyLODE without that name is left as it is."""
    from pylode import utils

    had = "set" in vars(utils)
    previous = vars(utils).get("set")
    utils.set = _ListOrderedSet
    try:
        yield
    finally:
        if had:
            utils.set = previous
        else:
            del utils.set


def _reproducible(graph: rdflib.Graph) -> rdflib.Graph:
    """``graph`` with canonical blank-node labels (rdflib.compare: the same for the same graph, on every
    run) and its triples inserted in sorted order: pyLODE lists terms in the store's order, which for a
    graph read from Turtle depends on the run (blank nodes get new random ids each time), so the pages
    differed between two runs on the same ontology."""
    from rdflib.compare import to_canonical_graph

    ordered = rdflib.Graph()
    for prefix, namespace in graph.namespaces():
        ordered.bind(prefix, namespace, override=True, replace=True)
    for triple in sorted(to_canonical_graph(graph), key=lambda t: tuple((type(term).__name__, str(term)) for term in t)):
        ordered.add(triple)
    return ordered


#: pyLODE's rendering of a term it has no page for: a link to the term's own string (a literal's lexical
#: form, a blank node's run-dependent id), with the mark of its kind (c: class, op: object property).
_TERM_LINK = re.compile(r'<a href="(?P<href>[^"]*)">(?P=href)</a>(?:\s*<sup class="sup-[a-z]+" title="[^"<]*">[a-z]+</sup>)?')


def _with_terms_named(page_html: str, graph: rdflib.Graph) -> str:
    """pyLODE's page with the terms it renders as links to nowhere written as what they are
    (docs/reviews/2026-12-02-package-cli-service.md #17): an owl:hasValue literal (``value true``) as the
    literal, and an anonymous class (a blank node, whose id changes on every run: ``some [owl:oneOf
    (...)]``, a nested intersection) as its expression (``one of {...}``, ``A and (p value true)``), so
    that no run-dependent id and no broken link reaches the page."""
    literals = {str(o) for o in graph.objects(None, OWL.hasValue) if isinstance(o, rdflib.Literal)}

    def named(match: re.Match) -> str:
        href = html.unescape(match["href"])
        node = rdflib.BNode(href)
        if (node, None, None) in graph:
            return _expression(graph, node)
        if href in literals:
            return f"<code>{match['href']}</code>"
        return match[0]

    return _TERM_LINK.sub(named, page_html)


def _expression(graph: rdflib.Graph, node, depth: int = 0) -> str:
    """An OWL class expression as text in Manchester syntax's words (and, or, not, one of, some, only,
    value, inverse), named terms linked: the guideline's to their documentation (a class or property to
    its IRI as pyLODE links it, an individual to its catalogue row), others by their IRI."""
    if not isinstance(node, rdflib.BNode):
        if isinstance(node, rdflib.Literal):
            return f"<code>{html.escape(str(node))}</code>"
        local = html.escape(_local(node))
        if str(node).startswith(str(NKG)):
            if (node, RDF.type, OWL.NamedIndividual) in graph:
                return f'<a href="catalogue.html#{local}">nkg:{local}</a>'
            return f'<a href="{html.escape(str(node))}">nkg:{local}</a>'
        return f'<a href="{html.escape(str(node))}">{local}</a>'
    if depth > 8:  # a cycle of blank nodes is not OWL; do not follow it
        return "<em>an anonymous class</em>"

    def part(child) -> str:
        text = _expression(graph, child, depth + 1)
        return f"({text})" if isinstance(child, rdflib.BNode) and " " in text else text

    for keyword, word in ((OWL.intersectionOf, "and"), (OWL.unionOf, "or")):
        members = graph.value(node, keyword)
        if members is not None:
            return f' <span class="cardinality">{word}</span> '.join(part(m) for m in Collection(graph, members))
    members = graph.value(node, OWL.oneOf)
    if members is not None:
        return f'<span class="cardinality">one of</span> {{{", ".join(part(m) for m in Collection(graph, members))}}}'
    complement = graph.value(node, OWL.complementOf)
    if complement is not None:
        return f'<span class="cardinality">not</span> {part(complement)}'
    inverse = graph.value(node, OWL.inverseOf)
    if inverse is not None:
        return f'<span class="cardinality">inverse</span> {part(inverse)}'
    prop = graph.value(node, OWL.onProperty)
    if prop is not None:
        for keyword, word in ((OWL.someValuesFrom, "some"), (OWL.allValuesFrom, "only"), (OWL.hasValue, "value")):
            value = graph.value(node, keyword)
            if value is not None:
                return f'{part(prop)} <span class="cardinality">{word}</span> {part(value)}'
    return "<em>an anonymous class</em>"


def _with_catalogue_links(page_html: str, page: str, groups: list[dict]) -> str:
    """pyLODE's page with, under each class that has catalogue entries, a link to them. pyLODE opens each
    term's section with <div class="property entity" id="FRAGMENT">; the link follows that tag."""
    for group in groups:
        if group["href"] and group["href"].startswith(f"{page}#"):
            tag = f'<div class="property entity" id="{group["href"].split("#", 1)[1]}">'
            link = (f'<p class="catalogue"><a href="catalogue.html#kind-{html.escape(group["anchor"])}">'
                    f'Catalogue: {len(group["rows"])} {html.escape(group["kind"])}</a></p>')
            page_html = page_html.replace(tag, tag + link, 1)
    return page_html


def catalogue_groups(graph: rdflib.Graph, anchors: dict[str, str] | None = None) -> list[dict]:
    """The named individuals by kind (their first class's label), each row a term with its documentation;
    ``anchors``: where each class is documented (for the links to the ontology pages)."""
    anchors = anchors or {}
    by_kind: dict[str, tuple[rdflib.URIRef | None, list[rdflib.URIRef]]] = {}
    for individual in sorted(set(graph.subjects(RDF.type, OWL.NamedIndividual))):
        kinds = sorted((str(graph.value(c, RDFS.label) or c), c) for c in graph.objects(individual, RDF.type)
                       if c != OWL.NamedIndividual)
        kind, cls = kinds[0] if kinds else ("individual", None)
        by_kind.setdefault(kind, (cls, []))[1].append(individual)
    groups = []
    for kind in sorted(by_kind):
        cls, individuals = by_kind[kind]
        rows = []
        for individual in individuals:
            sources = sorted(graph.objects(individual, CITO.citesAsEvidence), key=lambda s: str(graph.value(s, DCTERMS.identifier) or s))
            rows.append({
                "id": str(graph.value(individual, DCTERMS.identifier) or _local(individual)),
                "local": _local(individual),
                "iri": str(individual),
                "label": str(graph.value(individual, RDFS.label) or ""),
                "definition": str(graph.value(individual, SKOS.definition) or ""),
                "citations": [{"text": str(graph.value(s, DCTERMS.identifier) or s),
                               "href": f"#{_local(s)}" if str(s).startswith(str(NKG)) else None} for s in sources],
                "codes": sorted(str(c) for p in (SKOS.exactMatch, SKOS.closeMatch) for c in graph.objects(individual, p)),
            })
        groups.append({"kind": kind, "anchor": _local(cls) if cls is not None else "individual",
                       "href": anchors.get(str(cls)) if cls is not None else None, "rows": rows})
    return groups


def catalogue_html(graph: rdflib.Graph) -> str:
    """The catalogue page alone (without links to the ontology pages)."""
    pages = [{"file": page, "title": title, "what": what} for _iri, page, title, what in ONTOLOGY_PAGES]
    return _templates().get_template("catalogue.html.j2").render(groups=catalogue_groups(graph), pages=pages)


def _local(iri) -> str:
    text = str(iri)
    return text[len(str(NKG)):] if text.startswith(str(NKG)) else text.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1]

