"""The library, for notebooks and programs: the commands' JSON documents as Python values.

    import neuropathy_kg as nkg
    document = nkg.recommend(["examples/"], as_of="2026-11-24")
    rows = nkg.query("patient-facts", ["examples/"], as_of="2026-11-24")

``inputs`` is one input or a list of them, each a path (a file, a folder; str or os.PathLike) or FHIR
JSON already in memory: a Bundle or a single resource as a dict (a list of dicts is a list of inputs).
An input that cannot be read raises :class:`InputError` naming every such input (``errors="report"``
keeps going instead and lists them in the document's ``summary["errors"]``); a patient whose data breaks
a step is always reported in the summary (``failedPatients``) and the others' results stand, as on the
command line. Results equal the command's ``--format json`` output byte for byte once encoded.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Iterable, Union

from .load import InputError, SkippedFile

Input = Union[str, "os.PathLike[str]", dict]


@dataclass
class RunSummary:
    """What a population run did: patients with a result, patients that failed, inputs that could not be read."""

    processed: int = 0
    failed_patients: int = 0
    failed_inputs: int = 0
    all_conform: bool = True
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.failed_patients or self.failed_inputs)

    def as_json(self) -> dict:
        return {"patients": self.processed, "failedPatients": self.failed_patients, "failedInputs": self.failed_inputs}

    def line(self) -> str:
        from .render import plural

        return (f"{plural(self.processed, 'patient')} processed, {plural(self.failed_patients, 'patient')} failed, "
                f"{plural(self.failed_inputs, 'input or line', 'inputs or lines')} skipped as unreadable")


class InputErrors(InputError):
    """Several inputs could not be read; ``errors`` holds each one's InputError."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = list(errors)
        Exception.__init__(self, "; ".join(map(str, self.errors)))
        self.source = ", ".join(error.source for error in self.errors)
        self.problem = "; ".join(error.problem for error in self.errors)

    def __str__(self) -> str:
        return "; ".join(map(str, self.errors))

    def __reduce__(self):
        return type(self), (self.errors,)


def _date(as_of: str | dt.date | None) -> dt.date:
    if as_of is None:
        return dt.date.today()
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    try:
        return dt.date.fromisoformat(as_of)
    except (TypeError, ValueError):
        raise ValueError(f"as_of: {as_of!r} is not a date (datetime.date or YYYY-MM-DD)") from None


def _inputs(inputs: Input | Iterable[Input] | None) -> list[Input]:
    if inputs is None:
        return []
    if isinstance(inputs, (str, os.PathLike, dict)):
        return [inputs]
    if isinstance(inputs, (bytes, bytearray, memoryview)) or not isinstance(inputs, Iterable):
        raise TypeError(f"inputs: {type(inputs).__name__} is neither a path nor FHIR JSON as a dict"
                        + (" (decode it, e.g. json.loads, first)" if isinstance(inputs, (bytes, bytearray, memoryview)) else ""))
    items = list(inputs)
    for item in items:
        if not isinstance(item, (str, os.PathLike, dict)):
            raise TypeError(f"inputs: {type(item).__name__} is neither a path nor FHIR JSON as a dict")
    return items


def _run(inputs, work, size: int, errors: str) -> tuple[list, RunSummary]:
    """``work`` over every chunk of patients, through the command's own population path (batch.run, one
    process): paths, and dicts as FHIR JSON documents named '<input N>' (_documents); every FHIR input
    is one export, as on the command line."""
    from . import batch

    if errors not in ("raise", "report"):
        raise ValueError("errors must be 'raise' or 'report'")
    summary, results, problems = RunSummary(), [], []

    def report(found) -> None:
        for error in found:
            if isinstance(error, batch.PatientFailure):
                summary.failed_patients += 1
            elif not isinstance(error, SkippedFile):  # a file that is not patient data: listed, not failed
                summary.failed_inputs += 1
                problems.append(error)
            summary.errors.append(str(error))

    items = _inputs(inputs)
    if not items:  # as the command refuses a run with no input
        raise ValueError("no inputs: give one or more paths or FHIR JSON dicts")
    for chunk in batch.run(_documents(items), size, work, 1, report):
        results.extend(chunk)
    if problems and errors == "raise":
        raise problems[0] if len(problems) == 1 else InputErrors(problems)
    summary.processed = len(results)
    summary.all_conform = all(r.get("conforms", True) for r in results)
    return results, summary


def _summary(summary: RunSummary, errors: str) -> dict:
    document = summary.as_json()
    if errors == "report":
        document["errors"] = summary.errors
    return document


def recommend(inputs: Input | Iterable[Input], as_of: str | dt.date | None = None, engine: str = "oxigraph",
              errors: str = "raise", format: str = "json") -> dict:  # noqa: A002 - the command's option name
    """The recommend command's JSON document (with its summary) for the patients in ``inputs``;
    ``format="fhir"``: the FHIR Bundle of `recommend --format fhir` (per patient the CPG $apply result)."""
    from .pipeline import CHUNK_SIZE, recommend_chunk, recommend_document

    _check_format(format)
    date = _date(as_of)
    results, summary = _run(inputs, lambda chunk: recommend_chunk(chunk, date, engine), CHUNK_SIZE[engine], errors)
    document = {**recommend_document(date, results), "summary": _summary(summary, errors)}
    if format == "fhir":
        from .apply import recommend_bundle

        return recommend_bundle(document)
    return document


def _check_format(format: str) -> None:  # noqa: A002
    if format not in ("json", "fhir"):
        raise ValueError(f"format must be 'json' or 'fhir', not {format!r}")


def validate(inputs: Input | Iterable[Input], as_of: str | dt.date | None = None, engine: str = "oxigraph",
             shacl: str = "compiled", errors: str = "raise", format: str = "json") -> dict:  # noqa: A002
    """The validate command's JSON document (with its summary): SHACL findings per patient;
    ``format="fhir"``: the Bundle of `validate --format fhir` (DetectedIssue, OperationOutcome)."""
    from .pipeline import CHUNK_SIZE, validate_chunk, validate_document

    _check_format(format)
    date = _date(as_of)
    size = CHUNK_SIZE[engine] if shacl == "compiled" else 1
    results, summary = _run(inputs, lambda chunk: validate_chunk(chunk, date, engine, shacl), size, errors)
    document = {**validate_document(date, results), "summary": _summary(summary, errors)}
    if format == "fhir":
        from .apply import validate_bundle

        return validate_bundle(document)
    return document


def query(query: str, inputs: Input | Iterable[Input] | None = None, as_of: str | dt.date | None = None,
          engine: str = "oxigraph", endpoint: str | None = None, graph: str | None = None, timeout: float = 30.0):
    """Run a SPARQL query (its text, a .rq file, or the name of a query in queries/) over the guideline
    and the inputs' patients with their derived facts, or over a remote ``endpoint`` (``graph``: its
    named graph). SELECT -> a list of dicts {variable: Python value} (unbound variables left out; IRIs
    as str, numbers, booleans, dates as datetime.date); ASK -> bool; CONSTRUCT/DESCRIBE -> rdflib.Graph."""
    from pathlib import Path

    from . import guideline
    from .engine import query_form

    known = guideline.named_queries()
    if "{" not in query and query in known:
        text = known[query].read_text(encoding="utf-8")
    elif "{" not in query and Path(query).is_file():
        text = Path(query).read_text(encoding="utf-8")
    else:
        text = query
    try:
        form = query_form(text)
    except Exception as error:  # pyparsing's ParseException (an update, a typo), a dependency's type
        from .load import one_line

        named = query if text is not query else "query"
        raise ValueError(f"{named}: not a SPARQL query ({one_line(error)})") from None
    if endpoint:
        if inputs:
            raise ValueError("give either inputs (a local run) or endpoint (a remote store), not both")
        from .endpoint import run_query

        result = run_query(endpoint, text, form, timeout, graph)
    else:
        from .pipeline import derive

        patients = _patients(inputs)
        result = derive(patients, _date(as_of), engine).query(text)
    if result.form == "ask":
        return bool(result.boolean)
    if result.form in ("construct", "describe"):
        return result.graph
    return [{name: _python(term) for name, term in row.items()} for row in result.rows]


def _patients(inputs) -> list:
    from .load import read_patients

    patients, unreadable = read_patients(_documents(_inputs(inputs)))
    problems = [error for error in unreadable if not isinstance(error, SkippedFile)]
    if problems:
        raise problems[0] if len(problems) == 1 else InputErrors(problems)
    return patients


def _groups(items: list) -> list[tuple[int, int]]:
    """``items`` cut into runs read as one: each Bundle dict, each run of lone resource dicts
    (_resources_end), each run of paths, as (start, end) positions in input order."""
    runs, start = [], 0
    while start < len(items):
        if isinstance(items[start], dict):
            end = _resources_end(items, start)
        else:
            end = start
            while end < len(items) and not isinstance(items[end], dict):
                end += 1
        runs.append((start, end))
        start = end
    return runs


def _resources_end(items: list, start: int) -> int:
    """Where the FHIR JSON dicts starting at ``start`` end as one document: a Bundle is a document of its
    own; consecutive lone resources (a Patient, then its Observations...) are one, as the lines of an
    NDJSON export are, so that a patient's resources given one by one are one patient."""
    if items[start].get("resourceType") == "Bundle":
        return start + 1
    end = start
    while end < len(items) and isinstance(items[end], dict) and items[end].get("resourceType") != "Bundle":
        end += 1
    return end


def _documents(items: list) -> list:
    """The inputs as batch.run and load.read_patients take them: paths as str, and dicts as (name, FHIR
    JSON) documents in memory (see _groups), named '<input N>' or '<inputs N-M>' by their positions."""
    import orjson

    found: list = []
    for start, end in _groups(items):
        if not isinstance(items[start], dict):
            found.extend(os.fspath(item) for item in items[start:end])
        elif end - start == 1:
            found.append((f"<input {start + 1}>", orjson.dumps(items[start], option=orjson.OPT_NON_STR_KEYS)))
        else:
            found.append((f"<inputs {start + 1}-{end}>",
                          b"\n".join(orjson.dumps(item, option=orjson.OPT_NON_STR_KEYS) for item in items[start:end])))
    return found


def _python(term):
    """An RDF term as a Python value: IRIs and blank nodes as str, literals as rdflib converts them
    (int, float, Decimal, bool, datetime.date, str; the lexical form where rdflib cannot)."""
    import rdflib

    if isinstance(term, rdflib.Literal):
        value = term.toPython()
        return str(term) if isinstance(value, rdflib.Literal) else value
    return str(term)
