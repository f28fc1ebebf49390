"""The bottom layer of reading: a patient as read, the one-line error contract, units of work.

Every other reading module (ndjson, fhir, load, batch) imports from here and this module imports none
of them, so there is no import circle.
"""

from __future__ import annotations

import re
from typing import Iterator

import rdflib
from rdflib import URIRef

MEGABYTE = 1 << 20

#: What the one-line contract escapes: C0 and C1 control characters, DEL, and every other character
#: str.splitlines() breaks a line at (U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR; U+0085, U+001C-E
#: are control characters already), so that a resource id or file name can never start a second line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with control characters and line separators written as escapes: one line, always."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


#: Longest error text shown from a parser or engine message (they can quote whole documents).
MESSAGE_LIMIT = 240


def one_line(error: BaseException) -> str:
    """An exception as one line of bounded length, for the one-line error contract."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    text = printable(" ".join(str(error).split()))
    return text[:MESSAGE_LIMIT] if text else type(error).__name__


class InputError(Exception):
    """Unusable input. ``str(error)`` is the one line shown to the user."""

    def __init__(self, source: str, problem: str):
        source, problem = printable(source), printable(problem)
        super().__init__(f"{source}: {problem}")
        self.source, self.problem = source, problem

    def __reduce__(self):  # worker processes send errors back pickled; Exception's default loses an argument
        return type(self), (self.source, self.problem)


class SkippedFile(InputError):
    """A file inside an input folder that is not patient data by its name (notes.txt, .DS_Store): named on
    standard error, never dropped in silence, but no failure: nothing in it was meant to be read. (A broken
    link, a FIFO or an unreadable file in a folder is an InputError: something there could not be read.)"""


class Patient:
    """One patient's data, as read: an rdflib graph (RDF input) or N-Triples (the FHIR reader writes them
    directly, which is what population runs load into Oxigraph). Each form is made from the other on
    first use, so the fast path never builds rdflib graphs and the reference paths still get one."""

    __slots__ = ("iri", "id", "source", "_graph", "_ntriples")

    def __init__(self, iri: URIRef, id: str, source: str, graph: rdflib.Graph | None = None,
                 ntriples: bytes | None = None):
        if (graph is None) == (ntriples is None):
            raise ValueError("a Patient is made from a graph or from N-Triples, not both")
        self.iri, self.id, self.source = iri, id, source
        self._graph, self._ntriples = graph, ntriples

    def __repr__(self) -> str:
        return f"Patient(iri={self.iri!r}, id={self.id!r}, source={self.source!r})"

    @property
    def graph(self) -> rdflib.Graph:
        if self._graph is None:
            self._graph = rdflib.Graph().parse(data=self._ntriples, format="nt")
        return self._graph

    @property
    def ntriples(self) -> bytes:
        if self._ntriples is None:
            self._ntriples = self._graph.serialize(format="nt", encoding="utf-8")
        return self._ntriples

    def merge(self, other: "Patient") -> None:
        """Add another reading of the same patient (a patient split over several files)."""
        self._graph = self.graph + other.graph
        self._ntriples = None


def chunks(items: list, size: int) -> Iterator[list]:
    """``items`` in consecutive chunks of about ``size`` (balanced, at most 1.5 x size), so that no small
    remainder pays a chunk's fixed cost alone: 1,100 patients are one chunk of 1,100, not 1,000 and 100."""
    count = max(1, round(len(items) / size)) if items else 0
    for k in range(count):
        yield items[k * len(items) // count:(k + 1) * len(items) // count]


# ---------------------------------------------------------------- literals both engines represent alike
# Oxigraph holds xsd:decimal in 128 bits with 18 fractional digits and xsd:integer in 64 bits; rdflib in
# Python's Decimal and int, without bound. A value one engine cannot hold made it "malformed" there and a
# dose in the other (issue 14). The readers therefore hand both engines only what both hold alike.

#: Numbers at or above this magnitude are no measurement or dose; written as plain text, both engines
#: report them as malformed (data-malformed-value) instead of overflowing one engine's arithmetic.
NUMBER_LIMIT = 10 ** 15
#: Fractional digits Oxigraph keeps in an xsd:decimal; more are rounded (half to even) to these.
DECIMAL_DIGITS = 18


def canonical_integer(value: int) -> str | None:
    """The xsd:integer text of an integer, or None where it is too large for both engines alike."""
    return str(value) if abs(value) < NUMBER_LIMIT else None


def canonical_decimal(value) -> str | None:
    """The xsd:decimal text of a Decimal both engines hold alike (at most 18 fractional digits, -0 as
    0), or None where it is no finite number under NUMBER_LIMIT."""
    from decimal import Decimal, InvalidOperation

    try:
        if not value.is_finite() or abs(value) >= NUMBER_LIMIT:
            return None
        if value.as_tuple().exponent < -DECIMAL_DIGITS:
            value = value.quantize(Decimal(1).scaleb(-DECIMAL_DIGITS))
    except InvalidOperation:
        return None
    if value.is_zero():
        value = abs(value)
    return format(value, "f")
