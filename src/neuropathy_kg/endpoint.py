"""Remote SPARQL 1.1 stores: queries through SPARQLWrapper, loading through the Graph Store Protocol.

Credentials come from the environment, never from the command line: NEUROPATHY_KG_ENDPOINT_TOKEN (sent as
a Bearer token), or NEUROPATHY_KG_ENDPOINT_USER and NEUROPATHY_KG_ENDPOINT_PASSWORD (HTTP Basic).
Failures are one line (EndpointError); connection errors, timeouts and 5xx answers are retried a
bounded number of times with backoff, 4xx answers are not.
"""

from __future__ import annotations

import base64
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, TypeVar

import rdflib
from rdflib.term import Identifier

from .batch import StopRun
from .load import one_line

ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
T = TypeVar("T")


class EndpointError(StopRun):
    """The endpoint could not be used; ``str(error)`` is the one line shown. It ends a population run
    (batch.StopRun): one patient at a time would not mend it."""


class _Permanent(Exception):
    """A failure retrying cannot mend (a 4xx answer, a malformed result)."""


def _auth_header() -> dict[str, str]:
    token = os.environ.get("NEUROPATHY_KG_ENDPOINT_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("NEUROPATHY_KG_ENDPOINT_USER"), os.environ.get("NEUROPATHY_KG_ENDPOINT_PASSWORD")
    if user is not None:
        encoded = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        return {"Authorization": f"Basic {encoded}"}
    return {}


def _with_retries(url: str, action: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except _Permanent as error:
            raise EndpointError(f"{url}: {error}") from None
        except Exception as error:  # connection refused, timeout, 5xx: worth another try
            if attempt == ATTEMPTS:
                raise EndpointError(f"{url}: {_describe(error)} (after {ATTEMPTS} attempts)") from None
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _describe(error: BaseException) -> str:
    from SPARQLWrapper.SPARQLExceptions import EndPointInternalError

    if isinstance(error, EndPointInternalError):
        return "HTTP 500 (the endpoint failed)"
    if isinstance(error, ValueError) and "JSON" in type(error).__name__ + str(error):
        return f"malformed SPARQL results ({one_line(error)})"
    reason = getattr(error, "reason", None)
    if isinstance(reason, (ConnectionRefusedError, socket.timeout, TimeoutError)) or isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out" if "timed out" in str(error) or isinstance(reason, (socket.timeout, TimeoutError)) else "connection refused"
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    return one_line(error)


def _term(binding: dict) -> Identifier:
    kind, value = binding.get("type"), binding.get("value")
    if kind == "uri":
        return rdflib.URIRef(value)
    if kind == "bnode":
        return rdflib.BNode(value)
    if kind in ("literal", "typed-literal"):
        if "xml:lang" in binding:
            return rdflib.Literal(value, lang=binding["xml:lang"])
        datatype = binding.get("datatype")
        return rdflib.Literal(value, datatype=rdflib.URIRef(datatype) if datatype else None)
    raise _Permanent(f"malformed SPARQL results: a binding of type {kind!r}")


def select(url: str, query: str, timeout: float = 30.0) -> list[dict[str, Identifier]]:
    """A SELECT against a SPARQL 1.1 query endpoint, as rows of rdflib terms."""
    from SPARQLWrapper import JSON, POST, SELECT, URLENCODED, SPARQLWrapper
    from SPARQLWrapper.SPARQLExceptions import EndPointNotFound, QueryBadFormed, Unauthorized

    def attempt() -> list[dict[str, Identifier]]:
        client = SPARQLWrapper(url)
        client.setQuery(query)
        # SPARQLWrapper guesses the query type with a regex that takes ?creatinineClearance for CLEAR.
        client.queryType = SELECT
        client.setMethod(POST)
        client.setRequestMethod(URLENCODED)
        client.setReturnFormat(JSON)
        client.setTimeout(int(max(1, timeout)))
        for name, value in _auth_header().items():
            client.addCustomHttpHeader(name, value)
        try:
            document = client.queryAndConvert()
        except QueryBadFormed:
            raise _Permanent("HTTP 400 (the endpoint rejected the query as malformed)") from None
        except Unauthorized:
            raise _Permanent("HTTP 401 (not authorised: set NEUROPATHY_KG_ENDPOINT_TOKEN or _USER/_PASSWORD)") from None
        except EndPointNotFound:
            raise _Permanent("HTTP 404 (no SPARQL endpoint at this URL)") from None
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500:
                raise _Permanent(f"HTTP {error.code} {error.reason}") from None
            raise
        if not isinstance(document, dict) or "results" not in document:
            raise _Permanent("malformed SPARQL results: no 'results' in the answer")
        try:
            return [{name: _term(value) for name, value in row.items()} for row in document["results"]["bindings"]]
        except (AttributeError, KeyError, TypeError) as error:
            raise _Permanent(f"malformed SPARQL results ({one_line(error)})") from None

    return _with_retries(url, attempt)


def upload(store_url: str, ntriples: bytes, graph: str | None = None, timeout: float = 60.0, replace: bool = False) -> None:
    """POST N-Triples into a Graph Store Protocol endpoint (the default graph, or a named one); with
    ``replace``, PUT them: the graph then holds these triples only."""
    separator = "&" if "?" in store_url else "?"
    target = f"{store_url}{separator}graph={urllib.parse.quote(graph, safe='')}" if graph else f"{store_url}{separator}default"

    def attempt() -> None:
        request = urllib.request.Request(target, data=ntriples, method="PUT" if replace else "POST",
                                         headers={"Content-Type": "application/n-triples", **_auth_header()})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500:
                raise _Permanent(f"HTTP {error.code} {error.reason}") from None
            raise

    _with_retries(store_url, attempt)



def run_query(url: str, query: str, form: str, timeout: float = 30.0, default_graph: str | None = None):
    """A query of any form against a SPARQL 1.1 query endpoint, as an engine.QueryResult; ``default_graph``
    is sent as default-graph-uri (the named graph `load --graph` wrote)."""
    from SPARQLWrapper import ASK, CONSTRUCT, DESCRIBE, JSON, N3, POST, SELECT, URLENCODED, SPARQLWrapper
    from SPARQLWrapper.SPARQLExceptions import EndPointNotFound, QueryBadFormed, Unauthorized

    from .engine import QueryResult

    def attempt() -> QueryResult:
        client = SPARQLWrapper(url)
        client.setQuery(query)
        # SPARQLWrapper guesses the query type with a regex that takes ?creatinineClearance for CLEAR.
        client.queryType = {"select": SELECT, "ask": ASK, "construct": CONSTRUCT, "describe": DESCRIBE}[form]
        client.setMethod(POST)
        client.setRequestMethod(URLENCODED)
        client.setReturnFormat(JSON if form in ("select", "ask") else N3)
        client.setTimeout(int(max(1, timeout)))
        if default_graph:
            client.addDefaultGraph(default_graph)
        for name, value in _auth_header().items():
            client.addCustomHttpHeader(name, value)
        try:
            answer = client.query()
            if form in ("construct", "describe"):
                data = answer.response.read()
                graph = rdflib.Graph()
                kind = answer.response.headers.get("Content-Type", "text/turtle").split(";")[0].strip()
                graph.parse(data=data, format={"application/n-triples": "nt", "application/rdf+xml": "xml",
                                               "application/ld+json": "json-ld"}.get(kind, "turtle"))
                return QueryResult(form, graph=graph)
            document = answer.convert()
        except QueryBadFormed:
            raise _Permanent("HTTP 400 (the endpoint rejected the query as malformed)") from None
        except Unauthorized:
            raise _Permanent("HTTP 401 (not authorised: set NEUROPATHY_KG_ENDPOINT_TOKEN or _USER/_PASSWORD)") from None
        except EndPointNotFound:
            raise _Permanent("HTTP 404 (no SPARQL endpoint at this URL)") from None
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500:
                raise _Permanent(f"HTTP {error.code} {error.reason}") from None
            raise
        if form == "ask":
            if not isinstance(document, dict) or not isinstance(document.get("boolean"), bool):
                raise _Permanent("malformed SPARQL results: no boolean in the answer to an ASK")
            return QueryResult(form, boolean=document["boolean"])
        if not isinstance(document, dict) or "results" not in document:
            raise _Permanent("malformed SPARQL results: no 'results' in the answer")
        try:
            names = tuple(document.get("head", {}).get("vars", []))
            rows = tuple({name: _term(value) for name, value in row.items()} for row in document["results"]["bindings"])
        except (AttributeError, KeyError, TypeError) as error:
            raise _Permanent(f"malformed SPARQL results ({one_line(error)})") from None
        return QueryResult(form, names, rows)

    return _with_retries(url, attempt)


def held_assessment_dates(url: str, graph: str | None, timeout: float = 30.0) -> set[str]:
    """The assessment dates (nkg:assessmentDate) the store's graph holds: none in an empty store."""
    from . import NKG

    text = f"SELECT DISTINCT ?date WHERE {{ <{NKG.assessment}> <{NKG.assessmentDate}> ?date }}"
    return {str(row["date"]) for row in run_query(url, text, "select", timeout, graph).rows if "date" in row}
