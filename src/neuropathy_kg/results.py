"""SPARQL query results in the standard formats, from either engine or a remote endpoint.

SELECT: SPARQL 1.1 Query Results JSON (``json``), CSV and TSV (``csv``, ``tsv``), or a text table with
the columns in SELECT order (``text``, render.table). ASK: JSON (``{"head": {}, "boolean": ...}``) or
``true``/``false``. CONSTRUCT and DESCRIBE: Turtle or N-Triples. Plain strings are written without a
datatype on both engines (Oxigraph reports xsd:string, rdflib none: the same literal in RDF 1.1).
"""

from __future__ import annotations

import csv
import io
import json

import rdflib
from rdflib.namespace import XSD
from rdflib.term import Identifier

from .engine import QueryResult

#: Query form -> the output formats it has (the first is the default where stdout is not a terminal).
FORMATS = {
    "select": ("json", "csv", "tsv", "text"),
    "ask": ("json", "text"),
    "construct": ("turtle", "ntriples"),
    "describe": ("turtle", "ntriples"),
}


class FormatError(ValueError):
    """A format the query's form has not (e.g. csv for CONSTRUCT); the message is one line."""


def _plain(term: rdflib.Literal) -> bool:
    return term.datatype is None or term.datatype == XSD.string


def json_term(term: Identifier) -> dict:
    """One RDF term as a SPARQL 1.1 Query Results JSON binding."""
    if isinstance(term, rdflib.URIRef):
        return {"type": "uri", "value": str(term)}
    if isinstance(term, rdflib.BNode):
        return {"type": "bnode", "value": str(term)}
    binding = {"type": "literal", "value": str(term)}
    if term.language:
        binding["xml:lang"] = term.language
    elif not _plain(term):
        binding["datatype"] = str(term.datatype)
    return binding


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def tsv_term(term: Identifier) -> str:
    """One RDF term as SPARQL 1.1 TSV writes it: a literal in the short N-Triples form, its backslash,
    quote, tab and line breaks escaped (rdflib's n3() switches to the long triple-quoted form for text
    with a newline, which TSV readers, Oxigraph's and rdflib's, reject); IRIs and blank nodes as in Turtle."""
    if isinstance(term, rdflib.Literal):
        text = '"' + str(term).translate(_TSV_ESCAPES) + '"'
        if term.language:
            return f"{text}@{term.language}"
        return text if _plain(term) else f"{text}^^<{term.datatype}>"
    return term.n3()


def select_json(result: QueryResult) -> str:
    document = {"head": {"vars": list(result.variables)},
                "results": {"bindings": [{name: json_term(term) for name, term in row.items()} for row in result.rows]}}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def select_csv(result: QueryResult) -> str:
    """SPARQL 1.1 CSV: header of variable names, values as plain text (IRIs bare, bnodes _:id), CRLF."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(result.variables)
    for row in result.rows:
        writer.writerow([_csv_value(row[name]) if name in row else "" for name in result.variables])
    return out.getvalue()


def _csv_value(term: Identifier) -> str:
    return f"_:{term}" if isinstance(term, rdflib.BNode) else str(term)


def select_tsv(result: QueryResult) -> str:
    lines = ["\t".join(f"?{name}" for name in result.variables)]
    lines += ["\t".join(tsv_term(row[name]) if name in row else "" for name in result.variables) for row in result.rows]
    return "\n".join(lines) + "\n"


def ask_json(result: QueryResult) -> str:
    return json.dumps({"head": {}, "boolean": result.boolean}) + "\n"


def serialise(result: QueryResult, fmt: str) -> str:
    """``result`` in ``fmt``; FormatError where the form has no such format."""
    if fmt not in FORMATS[result.form]:
        raise FormatError(f"{result.form.upper()} queries have no --format {fmt} (choose {', '.join(FORMATS[result.form])})")
    if result.form == "select":
        if fmt == "text":
            from .render import table

            return table(list(result.variables),
                         [[_text_value(row.get(name)) for name in result.variables] for row in result.rows]) + "\n"
        return {"json": select_json, "csv": select_csv, "tsv": select_tsv}[fmt](result)
    if result.form == "ask":
        return ask_json(result) if fmt == "json" else ("true\n" if result.boolean else "false\n")
    graph = rdflib.Graph()
    for s, p, o in result.graph if result.graph is not None else ():
        graph.add((s, p, rdflib.Literal(str(o)) if isinstance(o, rdflib.Literal) and o.datatype == XSD.string else o))
    if fmt == "ntriples":
        return "".join(sorted(graph.serialize(format="nt").splitlines(keepends=True)))
    from . import NKG

    graph.bind("nkg", NKG)
    return graph.serialize(format="turtle")


def _text_value(term: Identifier | None) -> str:
    """A table cell: IRIs in our namespace by local name, literals by their text, unbound empty."""
    if term is None:
        return ""
    from .engine import python_value

    value = python_value(term) if not isinstance(term, rdflib.URIRef) else None
    if isinstance(term, rdflib.URIRef):
        from .engine import NKG_IRI

        return str(term)[len(NKG_IRI):] if str(term).startswith(NKG_IRI) else str(term)
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)
