"""Remote SPARQL 1.1 stores: queries (SPARQL 1.1 Protocol) and loading (Graph Store Protocol), over httpx.

Credentials come from the environment, never from the command line: NEUROPATHY_KG_ENDPOINT_TOKEN (sent as
a Bearer token), or NEUROPATHY_KG_ENDPOINT_USER and NEUROPATHY_KG_ENDPOINT_PASSWORD (HTTP Basic); a
``user:password@`` in the URL is used as HTTP Basic too. What every request obeys (docs/decisions.md,
"Fault safety (issue 14)"):

- a total deadline (``timeout`` seconds for the whole exchange, headers and body, not per socket read):
  an endpoint that trickles a byte a second ends at the deadline;
- a cap on the answer's size (NEUROPATHY_KG_MAX_ANSWER_MB, default 64): the answer is streamed and
  reading stops at the cap;
- redirects: to the same origin (scheme, host, port), 307 and 308 are followed (method, body and
  credentials kept) up to MAX_REDIRECTS; a redirect to another origin, or one that would turn the
  request into a GET (301, 302, 303), is refused, so credentials never leave the origin given;
- ``upload`` succeeds only on a 2xx answer from the store (a redirect is not a confirmation);
- secrets are never printed: every message has the token, the password and a URL's userinfo replaced
  by ``***``; library warnings and log records never reach standard error.

Failures are one line (EndpointError); connection errors, timeouts and 5xx answers are retried
ATTEMPTS times with backoff, anything else is not. The loop is five lines: tenacity would add a
dependency for no less code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import time
import urllib.parse
import warnings
from typing import Callable, NamedTuple, TypeVar

import httpx
import rdflib
from rdflib.term import Identifier

from .batch import StopRun
from .load import one_line

ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
MAX_REDIRECTS = 3
DEFAULT_MAX_ANSWER_MB = 64
T = TypeVar("T")

for _name in ("httpx", "httpcore", "hpack"):  # their records would reach standard error through logging's last resort
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)


class EndpointError(StopRun):
    """The endpoint could not be used; ``str(error)`` is the one line shown. It ends a population run
    (batch.StopRun): one patient at a time would not mend it."""


class Answer(NamedTuple):
    """A whole answer: its status, reason phrase, (decoded) body and media type (without parameters)."""

    status: int
    reason: str
    content: bytes
    content_type: str = ""


class _Permanent(Exception):
    """A failure retrying cannot mend (a 4xx answer, a refused redirect, a malformed or oversized answer)."""


class _Retryable(Exception):
    """A failure another attempt may mend (a 5xx answer, a timeout, a refused or dropped connection)."""


def max_answer_bytes() -> int:
    try:
        return max(1, int(os.environ.get("NEUROPATHY_KG_MAX_ANSWER_MB", DEFAULT_MAX_ANSWER_MB))) << 20
    except ValueError:
        return DEFAULT_MAX_ANSWER_MB << 20


def _secrets() -> list[str]:
    values = [os.environ.get(name) for name in ("NEUROPATHY_KG_ENDPOINT_TOKEN", "NEUROPATHY_KG_ENDPOINT_PASSWORD")]
    return [text for value in values if value for text in {value, value.strip()} if len(text) >= 3]


def redact(text: str) -> str:
    """``text`` with every URL's userinfo and every configured secret replaced by ``***``."""
    text = re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]*@", r"\1***@", text)  # greedy: a raw @ in a password
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


def _auth_header() -> dict[str, str]:
    """The Authorization header from the environment. Surrounding whitespace (a token file's trailing
    newline) is never part of a credential; a control character left inside is refused unprinted."""
    token = (os.environ.get("NEUROPATHY_KG_ENDPOINT_TOKEN") or "").strip()
    if token:
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in token):
            raise _Permanent("NEUROPATHY_KG_ENDPOINT_TOKEN holds a space or control character (not shown): fix the token")
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("NEUROPATHY_KG_ENDPOINT_USER"), os.environ.get("NEUROPATHY_KG_ENDPOINT_PASSWORD")
    if user is not None:
        encoded = base64.b64encode(f"{user.strip()}:{(password or '').strip()}".encode()).decode()
        return {"Authorization": f"Basic {encoded}"}
    return {}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


async def _exchange(method: str, url: str, headers: dict[str, str], body: bytes | dict | None, timeout: float,
                    limit: int) -> "Answer":
    """One request with its same-origin redirects, the answer's body read (at most ``limit`` bytes) into
    the returned response; within ``timeout`` seconds in all (asyncio.timeout cancels whatever is
    waiting: httpx itself only bounds each socket operation)."""
    async with asyncio.timeout(timeout), httpx.AsyncClient(follow_redirects=False, timeout=timeout) as client:
        target = httpx.URL(url)
        for _hop in range(MAX_REDIRECTS + 1):
            request = client.build_request(method, target, headers=headers,
                                           **({"data": body} if isinstance(body, dict) else {"content": body}))
            answer = await client.send(request, stream=True)
            try:
                if answer.is_redirect:
                    location = answer.headers.get("Location", "")
                    following = target.join(location)
                    if _origin(following) != _origin(target):
                        raise _Permanent(f"HTTP {answer.status_code} redirect to another origin ({redact(str(following))}): "
                                         "refused, credentials are never sent to another origin; give the final URL")
                    if answer.status_code not in (307, 308):
                        raise _Permanent(f"HTTP {answer.status_code} redirect to {redact(str(following))}: not followed "
                                         "(it would change the request into a GET); give the final URL")
                    target = following
                    continue
                declared = answer.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise _Permanent(_too_large(limit))
                content = bytearray()
                async for block in answer.aiter_bytes():  # decoded: the cap holds for a compressed answer too
                    content += block
                    if len(content) > limit:
                        raise _Permanent(_too_large(limit))
            finally:
                await answer.aclose()
            kind = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
            return Answer(answer.status_code, answer.reason_phrase, bytes(content), kind)
        raise _Permanent(f"more than {MAX_REDIRECTS} redirects")


def _too_large(limit: int) -> str:
    return (f"the answer is larger than the {limit >> 20} MB limit: stopped reading "
            "(NEUROPATHY_KG_MAX_ANSWER_MB raises the limit)")


def _run(exchange):
    """asyncio.run, also from code that already runs an event loop in this thread (a notebook): there, in a
    thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(exchange)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, exchange).result()


def _request(method: str, url: str, headers: dict[str, str], body: bytes | dict | None, timeout: float) -> "Answer":
    """_exchange, with its failures sorted into retryable and permanent; a 2xx answer is returned."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            answer = _run(_exchange(method, url, {**headers, **_auth_header()}, body, timeout, max_answer_bytes()))
        except TimeoutError:
            raise _Retryable(f"timed out (no complete answer within {timeout:g} s)") from None
        except httpx.ConnectError as error:
            raise _Retryable("connection refused" if "refused" in str(error).lower() else f"cannot connect ({one_line(error)})") from None
        except httpx.TimeoutException:
            raise _Retryable(f"timed out (no complete answer within {timeout:g} s)") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
            raise _Retryable(f"the connection failed ({one_line(error) or type(error).__name__})") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as error:
            raise _Permanent(f"cannot send the request ({one_line(error)})") from None
        except httpx.HTTPError as error:
            raise _Retryable(one_line(error) or type(error).__name__) from None
    status = answer.status
    if status >= 500:
        raise _Retryable(f"HTTP {status} {answer.reason} (the endpoint failed)")
    if status == 401:
        raise _Permanent("HTTP 401 (not authorised: set NEUROPATHY_KG_ENDPOINT_TOKEN or _USER/_PASSWORD)")
    if status == 404:
        raise _Permanent("HTTP 404 (no such endpoint at this URL)")
    if status == 400:
        raise _Permanent("HTTP 400 (the endpoint rejected the request as malformed)")
    if not httpx.codes.is_success(status):
        raise _Permanent(f"HTTP {status} {answer.reason} (not a success answer)")
    return answer


def _with_retries(url: str, action: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
    shown = redact(url)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except _Permanent as error:
            raise EndpointError(redact(f"{shown}: {error}")) from None
        except _Retryable as error:
            if attempt == ATTEMPTS:
                raise EndpointError(redact(f"{shown}: {error} (after {ATTEMPTS} attempts)")) from None
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


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
    """A SELECT against a SPARQL 1.1 query endpoint (POST, form-encoded), as rows of rdflib terms."""
    def attempt() -> list[dict[str, Identifier]]:
        answer = _request("POST", url, {"Accept": "application/sparql-results+json"}, {"query": query}, timeout)
        try:
            document = json.loads(answer.content)
        except ValueError as error:  # a garbled answer may be a passing fault of the endpoint
            raise _Retryable(f"malformed SPARQL results ({one_line(error)})") from None
        if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
            raise _Permanent("malformed SPARQL results: no 'results' in the answer")
        try:
            return [{name: _term(value) for name, value in row.items()} for row in document["results"]["bindings"]]
        except (AttributeError, KeyError, TypeError) as error:
            raise _Permanent(f"malformed SPARQL results ({one_line(error)})") from None

    return _with_retries(url, attempt)


def upload(store_url: str, ntriples: bytes, graph: str | None = None, timeout: float = 60.0, replace: bool = False) -> None:
    """POST N-Triples into a Graph Store Protocol endpoint (the default graph, or a named one); with
    ``replace``, PUT them: the graph then holds these triples only. Returns only when the store answered 2xx."""
    separator = "&" if "?" in store_url else "?"
    target = f"{store_url}{separator}graph={urllib.parse.quote(graph, safe='')}" if graph else f"{store_url}{separator}default"
    method = "PUT" if replace else "POST"
    _with_retries(store_url, lambda: _request(method, target, {"Content-Type": "application/n-triples"}, ntriples, timeout))


#: The media types a CONSTRUCT or DESCRIBE answer may come in, and rdflib's parser for each.
GRAPH_FORMATS = {"text/turtle": "turtle", "application/n-triples": "nt", "application/rdf+xml": "xml",
                 "application/ld+json": "json-ld"}


def run_query(url: str, query: str, form: str, timeout: float = 30.0, default_graph: str | None = None):
    """A query of any form against a SPARQL 1.1 query endpoint (POST, form-encoded), as an
    engine.QueryResult; ``default_graph`` is sent as default-graph-uri (the named graph `load --graph` wrote)."""
    from .engine import QueryResult

    fields = {"query": query, **({"default-graph-uri": default_graph} if default_graph else {})}
    accept = ("application/sparql-results+json" if form in ("select", "ask")
              else "text/turtle, application/n-triples;q=0.9")

    def attempt():
        answer = _request("POST", url, {"Accept": accept}, fields, timeout)
        if form in ("construct", "describe"):
            kind = answer.content_type or "text/turtle"
            graph = rdflib.Graph()
            try:
                graph.parse(data=answer.content, format=GRAPH_FORMATS.get(kind, "turtle"))
            except Exception as error:  # rdflib's parsers raise their own types
                raise _Permanent(f"malformed {kind} answer ({one_line(error)})") from None
            return QueryResult(form, graph=graph)
        try:
            document = json.loads(answer.content)
        except ValueError as error:  # a garbled answer may be a passing fault of the endpoint
            raise _Retryable(f"malformed SPARQL results ({one_line(error)})") from None
        if form == "ask":
            if not isinstance(document, dict) or not isinstance(document.get("boolean"), bool):
                raise _Permanent("malformed SPARQL results: no boolean in the answer to an ASK")
            return QueryResult(form, boolean=document["boolean"])
        if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
            raise _Permanent("malformed SPARQL results: no 'results' in the answer")
        try:
            names = tuple((document.get("head") or {}).get("vars") or [])
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
