"""The engine seam: one small interface over rdflib's SPARQL engine and Oxigraph (pyoxigraph).

Everything that runs SPARQL goes through :class:`Store`. Both engines must give the same answers for
every query in ``queries/``; ``tests/test_engines.py`` checks that. Terms come back as rdflib terms.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple, Protocol

import pyoxigraph as ox
import rdflib
from rdflib.namespace import XSD
from rdflib.plugins.sparql.algebra import translateQuery, translateUpdate
from rdflib.plugins.sparql.parser import expandUnicodeEscapes, parseQuery, parseUpdate
from rdflib.plugins.sparql.parserutils import CompValue
from pyparsing import ParseResults
from rdflib.plugins.sparql.processor import SPARQLProcessor, SPARQLUpdateProcessor
from rdflib.term import Identifier

from . import NKG, BoundedCache

ENGINES = ("oxigraph", "rdflib")


class Store(Protocol):
    def add_ntriples(self, data: bytes) -> None: ...
    def add_static_ntriples(self, data: bytes) -> None: ...
    def update(self, sparql: str) -> None: ...
    def select(self, sparql: str) -> list[dict[str, Identifier]]: ...
    def select_terms(self, sparql: str) -> list[dict[str, "Term"]]: ...
    def query(self, sparql: str) -> "QueryResult": ...
    def to_graph(self) -> rdflib.Graph: ...


class QueryResult(NamedTuple):
    """A query of any form, engine-neutral: SELECT -> ``variables`` (in SELECT order) and ``rows`` (rdflib
    terms, unbound left out); ASK -> ``boolean``; CONSTRUCT/DESCRIBE -> ``graph``."""

    form: str  # "select", "ask", "construct" or "describe"
    variables: tuple[str, ...] = ()
    rows: tuple[dict[str, Identifier], ...] = ()
    boolean: bool | None = None
    graph: rdflib.Graph | None = None


# ---------------------------------------------------------------- result values as the pipeline reads them

NKG_IRI = str(NKG)
NUMERIC_DATATYPES = frozenset(map(rdflib.URIRef, (
    XSD.double, XSD.float, XSD.decimal, XSD.integer, XSD.int, XSD.long)))
BOOLEAN = XSD.boolean  # looked up once: rdflib namespace attributes are slow on a hot path


def local_name(iri) -> str:
    text = str(iri)
    if text.startswith(NKG_IRI):
        return text[len(NKG_IRI):]
    return text.rsplit("/", 1)[-1]


def python_value(term) -> object:
    """A JSON-ready value of an rdflib term: IRIs by local name, numbers as int where whole (else rounded
    float), booleans as bool, dates and strings as their text."""
    if isinstance(term, rdflib.URIRef):
        return local_name(term)
    if isinstance(term, rdflib.Literal):
        if term.datatype in NUMERIC_DATATYPES:
            number = float(term.toPython())
            return int(number) if number.is_integer() else round(number, 2)
        if term.datatype == BOOLEAN:
            return term.toPython() is True
        return str(term)
    return str(term)


class Term(NamedTuple):
    """One value of a query result as the pipeline reads it: its text (the IRI, or the literal as rdflib
    writes it), whether it is an IRI, and its JSON value (python_value). Both engines make them from the
    same rdflib term, so that their JSON cannot differ."""

    text: str
    iri: bool
    value: object

    @classmethod
    def of(cls, term: Identifier) -> "Term":
        return cls(str(term), isinstance(term, rdflib.URIRef), python_value(term))


# ---------------------------------------------------------------- rdflib: parse each query text once
#
# rdflib parses a SPARQL string anew on every call (pyparsing, 20-40 ms for one of our queries), and
# pySHACL hands it each shape's SPARQL as a string, once per patient: parsing was 80 % of the pySHACL
# reference's time. These processors keep the translated algebra of each distinct text (and prefix
# and base context) and evaluate it as rdflib would; results are unchanged (a prepared query is what
# rdflib.plugins.sparql.prepareQuery makes for reuse). They are registered under rdflib's own plugin
# name "sparql", rdflib's documented extension point, so pySHACL's queries use them too.

def _namespace_key(init_ns) -> frozenset:
    return frozenset((init_ns or {}).items())


@lru_cache(maxsize=1024)
def _translated_query(text: str, base: str | None, namespaces: frozenset):
    parsed = parseQuery(text)
    _refuse_service(parsed)
    return translateQuery(parsed, base, dict(namespaces))


@lru_cache(maxsize=1024)
def _translated_update(text: str, namespaces: frozenset):
    parsed = parseUpdate(text)
    _refuse_service(parsed)
    return translateUpdate(parsed, None, dict(namespaces))


# ---------------------------------------------------------------- local queries stay local
#
# SERVICE makes both engines send HTTP requests (rdflib with urllib, Oxigraph with its own client) from a
# query over patient data. Every query on a local store is checked first: a query holding a SERVICE clause
# anywhere (a subquery, EXISTS, OPTIONAL) is refused, found in rdflib's parse tree, so the word inside a
# string, an IRI or a comment does not count. A text that does not contain the word at all (nor a \u
# escape, which SPARQL expands before parsing) cannot hold the clause and is not parsed again: the
# pipeline's own queries cost nothing.

class RemoteQueryRefused(ValueError):
    """A local query holds a SERVICE clause (a request to another endpoint); ``str(error)`` is one line."""

    def __init__(self) -> None:
        super().__init__("SERVICE clauses are refused: a query on local data never reaches the network "
                         "(to query a remote store, use query --endpoint)")


def _holds_service(node) -> bool:
    if isinstance(node, CompValue):
        return node.name == "ServiceGraphPattern" or any(_holds_service(value) for value in node.values())
    if isinstance(node, (list, tuple, ParseResults)):
        return any(_holds_service(value) for value in node)
    return False


def _refuse_service(parsed) -> None:
    if _holds_service(parsed):
        raise RemoteQueryRefused()


#: What is not a keyword: strings (long and short), IRIs, comments; removed before looking for SERVICE
#: in a text rdflib cannot parse.
_NOT_KEYWORDS = re.compile("|".join((
    r'"""(?:[^"\\]|\\.|"(?!""))*"""',
    r"'''(?:[^'\\]|\\.|'(?!''))*'''",
    r'"(?:[^"\\\n]|\\.)*"',
    r"'(?:[^'\\\n]|\\.)*'",
    r'<[^<>"{}|^`\\\s]*>',
    r"#[^\n]*",
)))
_SERVICE_KEYWORD = re.compile(r"(?<![?$:\w])SERVICE(?![\w:])", re.IGNORECASE)


@lru_cache(maxsize=1024)
def refuse_remote(sparql: str, update: bool = False) -> None:
    """Raise RemoteQueryRefused if ``sparql`` holds a SERVICE clause (see above)."""
    lowered = sparql.lower()
    if "service" not in lowered and "\\u" not in lowered:
        return
    try:
        parsed = (parseUpdate if update else parseQuery)(sparql)
    except Exception:  # noqa: BLE001 - rdflib cannot parse it (the engine will say why): look at its words
        if _SERVICE_KEYWORD.search(_NOT_KEYWORDS.sub(" ", expandUnicodeEscapes(sparql))):
            raise RemoteQueryRefused() from None
        return
    _refuse_service(parsed)


class PreparedSPARQLProcessor(SPARQLProcessor):
    """rdflib's SPARQL query processor, translating each distinct query text once."""

    def query(self, strOrQuery, initBindings=None, initNs=None, base=None, DEBUG=False):  # noqa: N803
        if isinstance(strOrQuery, str):
            strOrQuery = _translated_query(strOrQuery, base, _namespace_key(initNs))
        return super().query(strOrQuery, initBindings, initNs, base, DEBUG)


class PreparedSPARQLUpdateProcessor(SPARQLUpdateProcessor):
    """rdflib's SPARQL update processor, translating each distinct update text once."""

    def update(self, strOrQuery, initBindings=None, initNs=None):  # noqa: N803
        if isinstance(strOrQuery, str):
            strOrQuery = _translated_update(strOrQuery, _namespace_key(initNs))
        return super().update(strOrQuery, initBindings, initNs)


rdflib.plugin.register("sparql", rdflib.query.Processor, __name__, "PreparedSPARQLProcessor")
rdflib.plugin.register("sparql", rdflib.query.UpdateProcessor, __name__, "PreparedSPARQLUpdateProcessor")


class RdflibStore:
    """rdflib's own SPARQL engine: the reference implementation, slow on large graphs."""

    def __init__(self) -> None:
        self.graph = rdflib.Graph()

    def add_ntriples(self, data: bytes) -> None:
        self.graph.parse(data=data, format="nt")

    add_static_ntriples = add_ntriples

    def update(self, sparql: str) -> None:
        refuse_remote(sparql, update=True)
        self.graph.update(sparql)

    def select(self, sparql: str) -> list[dict[str, Identifier]]:
        refuse_remote(sparql)
        result = self.graph.query(sparql)
        names = [str(v) for v in result.vars]
        return [{n: row[i] for i, n in enumerate(names) if row[i] is not None} for row in result]

    def select_terms(self, sparql: str) -> list[dict[str, Term]]:
        return [{name: Term.of(term) for name, term in row.items()} for row in self.select(sparql)]

    def query(self, sparql: str) -> QueryResult:
        refuse_remote(sparql)
        result = self.graph.query(sparql)
        form = result.type.lower()
        if form == "select":
            names = tuple(str(v) for v in result.vars)
            return QueryResult(form, names, tuple({n: row[i] for i, n in enumerate(names) if row[i] is not None}
                                                  for row in result))
        if form == "ask":
            return QueryResult(form, boolean=bool(result.askAnswer))
        graph = rdflib.Graph()
        for triple in result:
            graph.add(triple)
        return QueryResult(form, graph=graph)

    def to_graph(self) -> rdflib.Graph:
        return self.graph


@lru_cache(maxsize=20_000)
def _named(value: str) -> rdflib.URIRef:
    return rdflib.URIRef(value)


@lru_cache(maxsize=20_000)
def _literal(value: str, datatype: str, language: str | None) -> rdflib.Literal:
    # Building an rdflib Literal parses its lexical form; results repeat the same few thousand values.
    if language:
        return rdflib.Literal(value, lang=language)
    return rdflib.Literal(value, datatype=_named(datatype))


def _to_rdflib(term: ox.NamedNode | ox.BlankNode | ox.Literal) -> Identifier:
    if isinstance(term, ox.NamedNode):
        return _named(term.value)
    if isinstance(term, ox.BlankNode):
        return rdflib.BNode(term.value)
    return _literal(term.value, term.datatype.value, term.language)


#: Oxigraph term -> Term. Keyed by the Oxigraph term itself (hashed in Rust): a population's results
#: repeat the same few thousand terms, and building each anew was most of the Python time per row.
_TERMS = BoundedCache(50_000)


def _term(term: ox.NamedNode | ox.BlankNode | ox.Literal) -> Term:
    found = _TERMS.get(term)
    if found is None:
        found = _TERMS.remember(term, Term.of(_to_rdflib(term)))
    return found


@lru_cache(maxsize=4)
def _parsed_quads(data: bytes) -> tuple:
    """The quads of an N-Triples text, as Oxigraph parses it (OxigraphStore.add_static_ntriples)."""
    parsed = ox.Store()
    parsed.bulk_load(data, format=ox.RdfFormat.N_TRIPLES, lenient=True)
    return tuple(parsed)


#: The largest N-Triples text OxigraphStore.add_ntriples loads in one transaction (Store.load) rather
#: than with the bulk loader.
SMALL_LOAD_BYTES = 4 << 20


class OxigraphStore:
    """Oxigraph, in memory: fast joins, the default engine."""

    def __init__(self) -> None:
        self.store = ox.Store()

    def add_ntriples(self, data: bytes) -> None:
        # lenient: IRIs are not validated again. Every N-Triples text loaded here was written by this
        # package (the FHIR reader percent-encodes what it puts in IRIs) or serialised by rdflib from a
        # graph it parsed; validating them again was a twentieth of a population run.
        # A text of a patient or a few (a CDS Hooks request: 1,577 triples, 270 kB) is loaded in one
        # transaction, which costs less than bulk_load's loader on the in-memory store (2.5 against 3.6 ms
        # CPU, median of 40); larger ones (a batch chunk) keep bulk_load, made for them. The same quads.
        if len(data) <= SMALL_LOAD_BYTES:
            self.store.load(data, format=ox.RdfFormat.N_TRIPLES, lenient=True)
        else:
            self.store.bulk_load(data, format=ox.RdfFormat.N_TRIPLES, lenient=True)

    def add_static_ntriples(self, data: bytes) -> None:
        """N-Triples that stay the same for the process (the guideline, loaded into every store): parsed
        once, then inserted from the parsed quads, which costs a third less than parsing them again
        (4.7 against 7.1 ms CPU for the ontology's 3,260 triples; a CDS Hooks request loads it each time)."""
        self.store.extend(_parsed_quads(data))

    def update(self, sparql: str) -> None:
        refuse_remote(sparql, update=True)
        self.store.update(sparql)

    def select(self, sparql: str) -> list[dict[str, Identifier]]:
        return self._rows(sparql, _to_rdflib)

    def select_terms(self, sparql: str) -> list[dict[str, Term]]:
        return self._rows(sparql, _term)

    def query(self, sparql: str) -> QueryResult:
        refuse_remote(sparql)
        result = self.store.query(sparql)
        if isinstance(result, ox.QueryBoolean):
            return QueryResult("ask", boolean=bool(result))
        if isinstance(result, ox.QueryTriples):
            graph = rdflib.Graph()
            for triple in result:
                graph.add((_to_rdflib(triple.subject), _to_rdflib(triple.predicate), _to_rdflib(triple.object)))
            form = "describe" if query_form(sparql) == "describe" else "construct"  # Oxigraph answers both alike
            return QueryResult(form, graph=graph)
        names = tuple(v.value for v in result.variables)
        return QueryResult("select", names, tuple({name: _to_rdflib(term) for name, term in zip(names, solution)
                                                   if term is not None} for solution in result))

    def _rows(self, sparql: str, convert) -> list[dict]:
        """Each solution as {variable: convert(term)}, unbound variables left out."""
        refuse_remote(sparql)
        result = self.store.query(sparql)
        names = [v.value for v in result.variables]
        return [{name: convert(term) for name, term in zip(names, solution) if term is not None}
                for solution in result]

    def to_graph(self) -> rdflib.Graph:
        data = self.store.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=ox.DefaultGraph())
        graph = rdflib.Graph()
        graph.parse(data=data, format="nt")
        return graph


@lru_cache(maxsize=256)
def query_form(sparql: str) -> str:
    """"select", "ask", "construct" or "describe" (rdflib's SPARQL parser; raises on a syntax error)."""
    return parseQuery(sparql)[1].name.removesuffix("Query").lower()


def new_store(engine: str) -> Store:
    if engine == "oxigraph":
        return OxigraphStore()
    if engine == "rdflib":
        return RdflibStore()
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")

