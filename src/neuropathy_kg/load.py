"""Reading patient data: paths, folders and standard input, format detection, one graph per patient.

Every problem becomes an :class:`InputError` whose message is one line naming the file; a bad file
does not stop the others. Input files are only ever opened for reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Iterable, Iterator

import rdflib
from rdflib import RDF, BNode, Literal, URIRef

from . import NKG

RDF_FORMATS = {
    ".ttl": "turtle", ".turtle": "turtle", ".nt": "nt", ".ntriples": "nt",
    ".jsonld": "json-ld", ".json-ld": "json-ld", ".rdf": "xml", ".owl": "xml", ".xml": "xml",
    ".trig": "trig", ".nq": "nquads", ".nquads": "nquads",
}
DATASET_FORMATS = {"trig", "nquads"}
PATIENT_FILE_SUFFIXES = set(RDF_FORMATS) | {".json", ".ndjson"}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(text: str) -> str:
    """Control characters (a newline in a resource id or a file name) written as escapes: one line, always."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


class InputError(Exception):
    """Unusable input. ``str(error)`` is the one line shown to the user."""

    def __init__(self, source: str, problem: str):
        source, problem = _printable(source), _printable(problem)
        super().__init__(f"{source}: {problem}")
        self.source, self.problem = source, problem

    def __reduce__(self):  # worker processes send errors back pickled; Exception's default loses an argument
        return type(self), (self.source, self.problem)


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


def expand_paths(paths: Iterable[str]) -> Iterator[str | Path]:
    """Files in the order given; folders recursively, sorted; '-' for standard input."""
    for raw in paths:
        if raw == "-":
            yield "-"
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PATIENT_FILE_SUFFIXES)
            if not files:
                raise InputError(raw, "folder holds no patient files (.ttl .nt .jsonld .rdf .trig .nq .json .ndjson)")
            yield from files
        elif path.exists():
            yield path
        else:
            raise InputError(raw, "no such file or folder")


#: The largest document read whole into memory (a Bundle, an RDF file, standard input). FHIR Bulk NDJSON
#: files of any size are streamed line by line instead. NEUROPATHY_KG_MAX_DOCUMENT_MB changes it.
DEFAULT_MAX_DOCUMENT_MB = 256
MEGABYTE = 1 << 20


def max_document_bytes() -> int:
    try:
        return max(1, int(os.environ.get("NEUROPATHY_KG_MAX_DOCUMENT_MB", DEFAULT_MAX_DOCUMENT_MB))) * MEGABYTE
    except ValueError:
        return DEFAULT_MAX_DOCUMENT_MB * MEGABYTE


def _too_large(size_text: str, limit: int) -> str:
    return (f"{size_text} is over the {limit // MEGABYTE} MB limit for one document read whole; split it or "
            "export FHIR Bulk NDJSON, which is streamed (NEUROPATHY_KG_MAX_DOCUMENT_MB raises the limit)")


def _read_bytes(source: str | Path) -> tuple[str, bytes]:
    limit = max_document_bytes()
    if source == "-":
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise InputError("<stdin>", _too_large("standard input", limit))
        return "<stdin>", data
    name = str(source)
    try:
        with open(source, "rb") as handle:  # read-only, always
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise InputError(name, "not a regular file (a device, pipe or socket is not read; use - for standard input)")
            if status.st_size > limit:
                raise InputError(name, _too_large(f"{status.st_size / MEGABYTE:,.0f} MB", limit))
            return name, handle.read()
    except OSError as error:
        raise InputError(name, f"cannot read file ({error.strerror or error})") from None


def sniff_format(name: str, data: bytes) -> str:
    """The RDF format (rdflib name) or 'fhir-json' / 'fhir-ndjson', by extension, else by content."""
    suffix = Path(name).suffix.lower()
    if suffix in RDF_FORMATS:
        return RDF_FORMATS[suffix]
    if suffix == ".ndjson":
        return "fhir-ndjson"
    head = data.lstrip()[:2048]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if not head:
        raise InputError(name, "file is empty")
    if head[:1] in (b"{", b"["):
        lines = data.strip().splitlines()
        if len(lines) > 1 and _is_json(lines[0]) and _is_json(lines[1]):
            return "fhir-ndjson"
        if b"@context" in head or b'"@id"' in head or b'"@graph"' in head:
            return "json-ld"
        return "fhir-json"
    if head.startswith(b"<?xml") or head.startswith(b"<rdf:RDF"):
        return "xml"
    return "turtle"


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


XML_DECLARATIONS = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def _refuse_hostile(name: str, text: str, fmt: str) -> None:
    """Refuse what would make a parser read local files, fetch from the network or expand without
    bound: XML document type and entity declarations (XXE, "billion laughs"), and JSON-LD contexts
    named by IRI (rdflib would fetch them)."""
    if fmt == "xml" and XML_DECLARATIONS.search(text.encode("utf-8", "replace")):
        raise InputError(name, "RDF/XML with a DOCTYPE or entity declarations is refused (external entities and entity expansion are not processed)")
    if fmt == "json-ld":
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise InputError(name, f"not valid json-ld: {one_line(error)}") from None
        remote = _remote_contexts(document)
        if remote:
            raise InputError(name, f"JSON-LD names a remote context ({remote[0]}): contexts are never fetched; inline it")


def _remote_contexts(node) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("@context", "@import"):
                values = value if isinstance(value, list) else [value]
                found += [v for v in values if isinstance(v, str)]
            found += _remote_contexts(value)
    elif isinstance(node, list):
        for item in node:
            found += _remote_contexts(item)
    return found


def _parse_rdf(name: str, data: bytes, fmt: str) -> rdflib.Graph | rdflib.Dataset:
    target: rdflib.Graph | rdflib.Dataset = rdflib.Dataset() if fmt in DATASET_FORMATS else rdflib.Graph()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(name, f"not UTF-8 text (byte {error.start})") from None
    _refuse_hostile(name, text, fmt)
    try:
        target.parse(data=text, format=fmt)
    except Exception as error:  # rdflib raises many parser-specific types
        raise InputError(name, f"not valid {fmt}: {one_line(error)}") from None
    return target


#: Longest error text shown from a parser or engine message (they can quote whole documents).
MESSAGE_LIMIT = 240


def one_line(error: BaseException) -> str:
    """An exception as one line of bounded length, for the one-line error contract."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    text = " ".join(str(error).split())
    return text[:MESSAGE_LIMIT] if text else type(error).__name__


def read_patients(paths: Iterable[str]) -> tuple[list[Patient], list[InputError]]:
    """All patients from all inputs, in input order; a patient found in several inputs is merged."""
    patients: dict[URIRef, Patient] = {}
    errors: list[InputError] = []
    try:
        sources = list(expand_paths(paths))
    except InputError as error:
        return [], [error]
    for source in sources:
        try:
            name, data = _read_bytes(source)
            found, problems = read_document(name, data)
            errors.extend(problems)
            for patient in found:
                if patient.iri in patients:
                    patients[patient.iri].merge(patient)
                else:
                    patients[patient.iri] = patient
        except InputError as error:
            errors.append(error)
    return list(patients.values()), errors


def read_document(name: str, data: bytes, sources: tuple[str, ...] | None = None) -> tuple[list[Patient], list[InputError]]:
    """The patients of one input and the problems that did not stop it; whatever goes wrong inside a
    parser or the FHIR reader becomes an InputError naming the input, never a traceback. ``sources``:
    the input is a spooled NDJSON bucket whose lines name these files (batch.py)."""
    try:
        if sources is not None:
            from . import fhir

            patients, problems, _count = fhir.to_patients(name, data, ndjson=True, sources=sources)
            return patients, problems
        return _patients_in(name, data)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - the last line of defence for the one-line error contract
        raise InputError(name, f"could not be read ({one_line(error)})") from None


def _patients_in(name: str, data: bytes) -> tuple[list[Patient], list[InputError]]:
    """The patients of one input, and the problems that did not stop it (bad NDJSON lines)."""
    fmt = sniff_format(name, data)
    if fmt in ("fhir-json", "fhir-ndjson"):
        from . import fhir  # imported lazily: RDF runs never need it

        patients, problems, count = fhir.to_patients(name, data, ndjson=(fmt == "fhir-ndjson"))
        if count == 0 and not problems:
            raise InputError(name, "no FHIR resources in it")
        # A file of resource types the guideline does not read (Encounter.ndjson of an export) is fine.
        return patients, problems
    parsed = _parse_rdf(name, data, fmt)
    if isinstance(parsed, rdflib.Dataset):
        found: list[Patient] = []
        for graph in parsed.graphs():
            if len(graph):
                plain = rdflib.Graph()
                for triple in graph:
                    plain.add(triple)
                found.extend(split_patients(name, plain))
        if not found:
            raise InputError(name, "no nkg:Patient in any named graph")
        return found, []
    found = split_patients(name, parsed)
    if not found:
        raise InputError(name, f"no patient found (no subject typed {NKG.Patient.n3()})")
    return found, []


def split_patients(name: str, graph: rdflib.Graph) -> list[Patient]:
    """One graph per nkg:Patient: the patient's triples and those of every record whose nkg:subject it is."""
    result = []
    patient_nodes = sorted(set(graph.subjects(RDF.type, NKG.Patient)), key=_node_order_key(graph))
    for node in patient_nodes:
        own = rdflib.Graph()
        _copy_closure(graph, node, own)
        for record in graph.subjects(NKG.subject, node):
            _copy_closure(graph, record, own)
        own = _name_blank_nodes(_untype_ill_typed(own), node)
        iri = node if isinstance(node, URIRef) else _blank_patient_iri(own, node)
        ident = own.value(iri, NKG.patientId)
        pid = str(ident) if ident is not None else _local_name(iri)
        result.append(Patient(iri=iri, id=pid, source=name, graph=own))
    return result


def _untype_ill_typed(graph: rdflib.Graph) -> rdflib.Graph:
    """Turn literals whose text does not fit their datatype (2026-02-30 as xsd:date, "abc" as xsd:decimal)
    into plain strings with the same text. The shapes report them (data-malformed-*), the rules skip
    them, and every engine sees the same data (rdflib's SPARQL would otherwise fail on them)."""
    bad = [(s, p, o) for s, p, o in graph if isinstance(o, Literal) and o.ill_typed]
    for s, p, o in bad:
        graph.remove((s, p, o))
        graph.add((s, p, Literal(str(o))))
    return graph


def _node_order_key(graph: rdflib.Graph):
    def key(node):
        ident = graph.value(node, NKG.patientId)
        return (str(ident) if ident is not None else _local_name(node), str(node))

    return key


def _copy_closure(source: rdflib.Graph, node, target: rdflib.Graph) -> None:
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for p, o in source.predicate_objects(current):
            target.add((current, p, o))
            if isinstance(o, BNode):
                stack.append(o)


def _name_blank_nodes(graph: rdflib.Graph, patient) -> rdflib.Graph:
    """Replace blank nodes by IRIs made from their content, so that runs are repeatable."""
    blanks = {s for s in graph.subjects() if isinstance(s, BNode)} - {patient}
    if not blanks:
        return graph
    base = str(patient) if isinstance(patient, URIRef) else "urn:neuropathy-kg:patient:anonymous"
    names = {}
    for blank in blanks:
        lines = sorted(
            f"{p.n3()} {o.n3() if not isinstance(o, BNode) else '_'}" for p, o in graph.predicate_objects(blank)
        )
        digest = hashlib.sha1("\n".join(lines).encode()).hexdigest()[:16]
        names[blank] = URIRef(f"{base}/record/{digest}")
    renamed = rdflib.Graph()
    for s, p, o in graph:
        renamed.add((names.get(s, s), p, names.get(o, o) if isinstance(o, BNode) else o))
    return renamed


def _blank_patient_iri(graph: rdflib.Graph, node: BNode) -> URIRef:
    ident = graph.value(node, NKG.patientId)
    key = str(ident) if ident is not None else hashlib.sha1(
        "\n".join(sorted(f"{p.n3()} {o.n3()}" for p, o in graph.predicate_objects(node))).encode()
    ).hexdigest()[:16]
    iri = URIRef(f"urn:neuropathy-kg:patient:{key}")
    for s, p, o in list(graph):
        if s == node or o == node:
            graph.remove((s, p, o))
            graph.add((iri if s == node else s, p, iri if o == node else o))
    return iri


def _local_name(node) -> str:
    text = str(node)
    for sep in ("#", "/", ":"):
        if sep in text:
            text = text.rsplit(sep, 1)[-1]
    return text or str(node)


def assessment_ntriples(as_of) -> bytes:
    """The assessment date (--as-of) as the one triple every time rule counts from."""
    return f'<{NKG.assessment}> <{NKG.assessmentDate}> "{as_of.isoformat()}"^^<{rdflib.XSD.date}> .\n'.encode()
