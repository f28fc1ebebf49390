"""The `neuropathy-kg` command (contract: ../shared/spec/interface.md, documented in README.md).

JSON goes to standard output, messages to standard error. Exit status: 0 done, 1 a violation
(validate) or inconsistency (reason), 2 unusable input or usage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Iterator, TextIO

import click
import rdflib

from . import __version__, guideline, render
from .engine import ENGINES
from .pipeline import SHACL_MODES
from .api import RunSummary
from .load import InputError, SkippedFile, one_line, read_patients

FORMATS = ("text", "json")
ALL_QUERY_FORMATS = ("json", "csv", "tsv", "text", "turtle", "ntriples")

def _fail(message: str) -> None:
    click.echo(f"neuropathy-kg: {message}", err=True)
    sys.exit(2)

def _as_of(value: str | None) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date of the form YYYY-MM-DD") from None

def _default_format(given: str | None, output: Path | None = None) -> str:
    if given:
        return given
    return "text" if output is None and sys.stdout.isatty() else "json"

def _json_text(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n"

@contextlib.contextmanager
def _output(path: Path | None, inputs: tuple[str, ...]) -> Iterator[TextIO]:
    """Where results go: standard output, or ``--output FILE`` written atomically and never onto an
    input, a FIFO or a device (output.atomic_file); a write error is one line, exit 2."""
    from .output import OutputError, atomic_file, standard_output

    try:
        with (standard_output(sys.stdout) if path is None else atomic_file(path, inputs)) as handle:
            yield handle
    except OutputError as error:
        _fail(str(error))

def _read(paths: tuple[str, ...]):
    if not paths:
        _fail("no input: give one or more files, folders, or - for standard input")
    patients, errors = read_patients(paths)
    errors = _shown(errors)
    if not patients and not errors:
        _fail("no patients found in the input")
    return patients, errors


def _shown(errors: list[InputError]) -> list[InputError]:
    """Each reading problem on standard error, one line each; returns those that are failures (a file
    that is not patient data, SkippedFile, is named only)."""
    for error in errors:
        click.echo(f"neuropathy-kg: {error}", err=True)
    return [error for error in errors if not isinstance(error, SkippedFile)]

def _default_jobs(paths: tuple[str, ...]) -> int:
    """All cores for large inputs; one process for small ones (forking costs more than it saves)."""
    total = 0
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return (os.cpu_count() or 1) if total > 2_000_000 else 1

def _population(paths: tuple[str, ...], work, size: int, jobs: int | None, jsonl: TextIO | None,
                progress: bool | None, lines=None, tally=None) -> tuple[list[dict], RunSummary]:
    """Run ``work`` over every chunk of patients (a patient that breaks a chunk is retried alone and
    reported by itself); with ``jsonl``, results are written there as chunks finish (as JSON lines, or
    as ``lines(work)`` makes them: (conforms, line) pairs). With ``tally`` (a scorecard.Tally), ``work``
    gives (output, digest) pairs: the tally counts the digests in this same pass and the outputs go on
    as usual."""
    from . import batch

    if not paths:
        _fail("no input: give one or more files, folders, or - for standard input")
    summary = RunSummary()
    show = sys.stderr.isatty() if progress is None else progress
    results = []
    bar = _progress_bar(show)

    def report(errors) -> None:
        for error in errors:
            click.echo(f"neuropathy-kg: {error}", err=True)
            if isinstance(error, batch.PatientFailure):
                summary.failed_patients += 1
            elif not isinstance(error, SkippedFile):  # a file that is not patient data is named, not failed
                summary.failed_inputs += 1

    batch.warm_up()
    if jsonl is not None and tally is None:  # each result leaves its worker as its JSON line: no pickled dicts, no encoding here
        work = (lines or batch.as_json_lines)(work)
    chunks = batch.run(paths, size, work, jobs or _default_jobs(paths), report, on_total=bar.reset if show else None)
    try:
        for chunk in chunks:
            if tally is not None:
                chunk = tally.add(chunk)
            summary.processed += len(chunk)
            if jsonl is not None:
                summary.all_conform = summary.all_conform and all(conforms for conforms, _line in chunk)
                jsonl.write("".join(line for _conforms, line in chunk))
                jsonl.flush()
            else:
                summary.all_conform = summary.all_conform and all(r.get("conforms", True) for r in chunk)
                results.extend(chunk)
            bar.set_postfix_str(f"{render.plural(summary.processed, 'patient')}, "
                                f"{summary.failed_patients + summary.failed_inputs} failed", refresh=False)
            bar.update(1)
    except (batch.WorkerLost, batch.SpoolFailed) as error:  # the results so far are not a whole run: no document
        bar.close()
        _fail(str(error))
    finally:
        chunks.close()  # an early end (a write error, a signal) stops the workers and removes the spool now
    bar.close()
    if not summary.processed:  # nothing to report: no document (an --output file is left as it was)
        if summary.failed:
            sys.exit(2)  # each failure has had its line
        _fail("no patients found in the input")
    if show or jsonl is not None:  # JSON Lines have no document to carry the summary
        click.echo(f"neuropathy-kg: {summary.line()}", err=True)
    return results, summary

def _progress_bar(show: bool):
    """tqdm over the run's units (files and NDJSON buckets; the total is known once they are listed):
    percentage, rate and time left on standard error, the patients done as its postfix."""
    from tqdm import tqdm

    return tqdm(total=None, unit="unit", desc="neuropathy-kg", file=sys.stderr, disable=not show, leave=True,
                dynamic_ncols=True, smoothing=0.1)

def _no_jsonl_with(jsonl: bool, fmt: str | None) -> None:
    """JSON Lines are JSON, one patient a line (its result, or with --format fhir its FHIR Bundle): text and Turtle cannot be written that way (exit 2)."""
    if jsonl and fmt not in (None, "json", "fhir"):
        raise click.UsageError(f"--jsonl writes JSON Lines; it cannot be combined with --format {fmt}")

def _spark_population(master: str, paths: tuple[str, ...], work, size: int, jsonl: bool, jobs: int | None,
                      parquet: bool, table: str, progress: bool | None, tally=None) -> tuple[RunSummary, object]:
    """``--spark MASTER``: the same work as Spark tasks (spark.py), JSON Lines part files into --output DIR;
    with ``tally`` (scorecard.Tally, ``work`` then scorecard.chunk_work), the run's tally, reduced by Spark
    (else None)."""
    from . import spark

    output = click.get_current_context().meta.get(RAW_OUTPUT)
    if not jsonl or output is None:
        _fail("--spark writes JSON Lines part files into a new folder: give --jsonl --output DIR")
    if jobs is not None:
        _fail("--jobs is for the embedded path; with --spark the master gives the cores (local[N], executors)")
    if not paths:
        _fail("no input: give one or more NDJSON files or folders (any Hadoop path)")
    if output in paths:
        _fail(f"{output}: is one of the inputs; nothing is ever written to an input file")
    try:
        with spark.started(master, sys.stderr.isatty() if progress is None else progress) as session:
            if spark.exists(session, output):
                _fail(f"{output}: already exists; --spark writes a new folder (Spark never writes into an existing one)")
            found = spark.run(session, paths, work, size, output, (table,) if parquet else (), tally)
    except spark.SparkUnavailable as error:
        _fail(str(error))
    except Exception as error:  # noqa: BLE001 - a failed Spark job: one line, never a traceback
        _fail(f"the Spark job failed: {one_line(error)}")
    for problem in found.problems:
        click.echo(f"neuropathy-kg: {problem}", err=True)
    summary = RunSummary(found.processed, found.failed_patients, found.failed_inputs, not found.non_conforming)
    if summary.failed_patients + summary.failed_inputs > len(found.problems):
        click.echo(f"neuropathy-kg: {summary.failed_patients + summary.failed_inputs - len(found.problems)} more "
                   f"problems not shown: all are in {output.rstrip('/')}/_errors/", err=True)
    if not summary.processed:
        if summary.failed:
            sys.exit(2)
        _fail("no patients found in the input")
    click.echo(f"neuropathy-kg: {summary.line()}; JSON Lines in {output}", err=True)
    return summary, found.tally


#: Where the --output of recommend and validate is kept as typed (ctx.meta): a Hadoop path for --spark,
#: which pathlib would spoil (hdfs://host/x becomes hdfs:/host/x).
RAW_OUTPUT = "neuropathy_kg.raw_output"


def _output_argument(value: str | None) -> str | None:
    """``--output`` as given: ``-`` is standard output (None), as ``-`` is standard input for inputs; an
    empty argument is refused (pathlib would make it the current folder)."""
    if value == "":
        _fail("--output '': is empty; give a file path, or - (or no --output) for standard output")
    return None if value in (None, "-") else value


def _refuse_folder_output(value: str | None) -> None:
    """A trailing slash says "a folder": refused for a file output (pathlib would drop it and write a file)."""
    if value is not None and value.endswith(("/", os.sep)):
        _fail(f"--output {value!r}: ends in a slash, so names a folder, not a file path; --output writes one file "
              "(a folder only with --spark)")


def _keep_raw_output(ctx: click.Context, _param, value: str | None) -> Path | None:
    value = _output_argument(value)
    ctx.meta[RAW_OUTPUT] = value
    return Path(value) if value is not None else None


def _file_output(_ctx: click.Context, _param, value: str | None) -> Path | None:
    value = _output_argument(value)
    _refuse_folder_output(value)
    return Path(value) if value is not None else None


spark_option = click.option("--spark", "spark_master", metavar="MASTER",
                            help="Run on Apache Spark (local[N], spark://HOST:PORT, yarn, k8s://...): NDJSON in, JSON "
                                 "Lines part files out; needs --jsonl --output DIR (pip install 'neuropathy-kg[spark]').")
parquet_option = click.option("--parquet", is_flag=True,
                              help="With --spark: also Parquet tables of the actions or findings in DIR/parquet/.")
population_output_option = click.option(
    "--output", "output", type=click.Path(dir_okay=False), callback=_keep_raw_output, metavar="FILE",
    help="Write results to FILE (atomically: whole or not at all) instead of standard output; with --spark, a new folder DIR.")


jsonl_option = click.option("--jsonl", is_flag=True, help="Write JSON Lines, one patient a line, as they are done (for huge runs).")
output_option = click.option("--output", "output", type=click.Path(dir_okay=False), callback=_file_output, metavar="FILE",
                             help="Write results to FILE (atomically: whole or not at all) instead of standard output.")
jobs_option = click.option("--jobs", type=click.IntRange(1, 256), help="Worker processes (default: all cores for inputs over 2 MB, else 1).")
progress_option = click.option("--progress/--no-progress", default=None, help="Progress on standard error (default: when it is a terminal).")
as_of_option = click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="Assessment date every time rule counts from (default: today).")
engine_option = click.option("--engine", type=click.Choice(ENGINES), default="oxigraph", show_default=True, help="SPARQL engine.")

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="neuropathy-kg")
def main() -> None:
    """The guideline 'Management of Relapsed Diabetic Neuropathy After IVIG' as a knowledge graph.

    \b
    Example:
      neuropathy-kg recommend --as-of 2026-11-24 --format text examples/
    \b
    JSON goes to standard output, messages and progress to standard error. Exit status: 0 done,
    1 a violation (validate) or inconsistency (reason), 2 unusable input or usage.
    """
    # rdflib logs a traceback for every ill-typed literal it meets; the shapes report those as data findings.
    logging.getLogger("rdflib").setLevel(logging.CRITICAL)
    if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
        from .output import stop_cleanly_on_signals

        click.get_current_context().call_on_close(stop_cleanly_on_signals())

@main.command()
@click.argument("paths", nargs=-1)
@as_of_option
@click.option("--format", "fmt", type=click.Choice(FORMATS + ("fhir",)),
              help="Output format (default: text on a terminal, else json; fhir: a Bundle of CPG $apply results).")
@engine_option
@jsonl_option
@population_output_option
@jobs_option
@progress_option
@spark_option
@parquet_option
def recommend(paths: tuple[str, ...], as_of: str | None, fmt: str | None, engine: str, jsonl: bool, output: Path | None,
              jobs: int | None, progress: bool | None, spark_master: str | None, parquet: bool) -> None:
    """Derive the guideline's recommended actions for each patient in PATHS (FHIR R4 JSON, NDJSON, RDF;
    files, folders, or - for standard input).

    \b
    Examples:
      neuropathy-kg recommend --as-of 2026-11-24 --format text examples/
      neuropathy-kg recommend --as-of 2026-11-24 --spark 'local[2]' --jsonl --output out/ export/
    \b
    Exit status: 0 done, 2 unusable input or usage (every other patient is still processed).
    """
    from .pipeline import CHUNK_SIZE, recommend_chunk, recommend_document

    _no_jsonl_with(jsonl, fmt)
    date = _as_of(as_of)
    if parquet and not spark_master:
        _fail("--parquet needs --spark MASTER")
    if spark_master:
        summary, _tally = _spark_population(spark_master, paths, lambda chunk: recommend_chunk(chunk, date, engine),
                                            CHUNK_SIZE[engine], jsonl, jobs, parquet, "actions", progress)
        sys.exit(2 if summary.failed else 0)
    _refuse_folder_output(click.get_current_context().meta.get(RAW_OUTPUT))
    with _output(output, paths) as out:
        results, summary = _population(paths, lambda chunk: recommend_chunk(chunk, date, engine), CHUNK_SIZE[engine],
                                       jobs, out if jsonl else None, progress, _fhir_lines("recommend", date) if fmt == "fhir" else None)
        if not jsonl:
            document = {**recommend_document(date, results), "summary": summary.as_json()}
            chosen = _default_format(fmt, output)
            if chosen == "fhir":
                out.write(_json_text(_fhir_bundle("recommend", document)))
            else:
                out.write(_json_text(document) if chosen == "json" else render.recommendations(document) + "\n")
    sys.exit(2 if summary.failed else 0)


def _fhir_lines(kind: str, date: dt.date):
    """--jsonl --format fhir: each patient's result as one FHIR Bundle a line (apply.py)."""
    def lines(work):
        from .apply import fhir_lines

        return fhir_lines(work, kind, date.isoformat())
    return lines


def _fhir_bundle(kind: str, document: dict) -> dict:
    from .apply import ApplyError, recommend_bundle, validate_bundle

    try:
        return recommend_bundle(document) if kind == "recommend" else validate_bundle(document)
    except ApplyError as error:
        _fail(str(error))


@main.command()
@click.argument("paths", nargs=-1)
@as_of_option
@click.option("--format", "fmt", type=click.Choice(FORMATS + ("turtle", "fhir")),
              help="Output format (default: text on a terminal, else json; fhir: DetectedIssues and OperationOutcomes).")
@click.option("--guideline", "check_guideline", is_flag=True, help="Check the guideline graph itself (shapes/guideline/) instead of patients.")
@click.option("--shacl", type=click.Choice(SHACL_MODES), default="compiled", show_default=True,
              help="compiled: each shape once per chunk of patients (fast); pyshacl: the reference engine, per patient.")
@engine_option
@jsonl_option
@population_output_option
@jobs_option
@progress_option
@spark_option
@parquet_option
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.json",
              help="Also write the data-quality scorecard (every data check and pitfall, counted over the run) to FILE.json.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.html",
              help="Also write the scorecard as one self-contained HTML page (charts, check table, sample patients).")
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False, path_type=Path), metavar="SUMMARY.json",
              help="A previous run's --summary: show each check's change since then.")
@click.option("--thresholds", "thresholds_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.json",
              help="JSON {check id: largest acceptable failing share} over the defaults of ontology/data-quality.ttl.")
def validate(paths: tuple[str, ...], as_of: str | None, fmt: str | None, check_guideline: bool, shacl: str, engine: str,
             jsonl: bool, output: Path | None, jobs: int | None, progress: bool | None, spark_master: str | None,
             parquet: bool, summary_path: Path | None, report_path: Path | None, baseline_path: Path | None,
             thresholds_path: Path | None) -> None:
    """Run the SHACL shapes (export checks and clinical pitfalls) on each patient in PATHS; --format
    turtle writes one standard sh:ValidationReport; --summary/--report the data-quality scorecard.

    \b
    Examples:
      neuropathy-kg validate --as-of 2026-11-24 --format text examples/
      neuropathy-kg validate --guideline --format turtle
      neuropathy-kg validate --as-of 2026-11-24 --jsonl --summary dq.json --report dq.html export/ > findings.jsonl
    \b
    Exit status: 0 every patient conforms, 1 a violation, 2 unusable input or usage (every other
    patient is still checked).
    """
    from .pipeline import CHUNK_SIZE, validate_chunk, validate_document, validate_guideline, validation_report_graph

    _no_jsonl_with(jsonl, fmt)
    if not spark_master:
        _refuse_folder_output(click.get_current_context().meta.get(RAW_OUTPUT))
    if check_guideline:
        if paths or jsonl:
            raise click.UsageError("--guideline checks the guideline graph itself: give no PATHS and no --jsonl")
        with _output(output, ()) as out:
            chosen = _default_format(fmt, output)
            if chosen == "turtle":
                from .pipeline import shacl_report

                data = rdflib.Graph()
                data += guideline.ontology()
                report = shacl_report(data, guideline.guideline_shapes())
                conforms = all(value.toPython() is True for value in report.objects(None, rdflib.namespace.SH.conforms))
                out.write(report.serialize(format="turtle"))
            else:
                document = validate_guideline()
                conforms = document["conforms"]
                if chosen == "json":
                    out.write(_json_text(document))
                else:
                    out.write(render.findings({"conforms": document["conforms"],
                                               "patients": [{"patient": "(guideline graph)", **document}]}, "graph") + "\n")
        sys.exit(0 if conforms else 1)
    date = _as_of(as_of)
    if parquet and not spark_master:
        _fail("--parquet needs --spark MASTER")
    scoring = _scorecard_setup(paths, output, shacl, check_guideline, summary_path, report_path, baseline_path,
                               thresholds_path)
    if scoring is not None and fmt == "fhir":
        raise click.UsageError("--summary and --report count JSON results (not --format fhir)")
    if spark_master:
        if scoring is not None:  # the scorecard's work and its digests, reduced by Spark (spark.aggregate)
            from .scorecard import Tally, chunk_work

            summary, tally = _spark_population(spark_master, paths, chunk_work(date, engine, encode=True),
                                               CHUNK_SIZE[engine], jsonl, jobs, parquet, "findings", progress, Tally)
            _write_scorecard(scoring, tally, paths, date, engine, summary, {"spark": spark_master})
        else:
            summary, _tally = _spark_population(spark_master, paths, lambda chunk: validate_chunk(chunk, date, engine, shacl),
                                                CHUNK_SIZE[engine] if shacl == "compiled" else 1, jsonl, jobs, parquet,
                                                "findings", progress)
        sys.exit(2 if summary.failed else 0 if summary.all_conform else 1)
    with _output(output, paths) as out:
        if scoring is not None:
            from .scorecard import Tally, chunk_work

            tally = Tally()
            results, summary = _population(paths, chunk_work(date, engine, encode=jsonl), CHUNK_SIZE[engine], jobs,
                                           out if jsonl else None, progress, tally=tally)
        else:
            results, summary = _population(paths, lambda chunk: validate_chunk(chunk, date, engine, shacl),
                                           CHUNK_SIZE[engine] if shacl == "compiled" else 1, jobs, out if jsonl else None,
                                           progress, _fhir_lines("validate", date) if fmt == "fhir" else None)
        if not jsonl:
            document = validate_document(date, results)
            chosen = _default_format(fmt, output)
            if chosen == "json":
                out.write(_json_text({**document, "summary": summary.as_json()}))
            elif chosen == "turtle":
                out.write(validation_report_graph(document).serialize(format="turtle"))
            elif chosen == "fhir":
                out.write(_json_text(_fhir_bundle("validate", document)))
            else:
                out.write(render.findings(document) + "\n")
    if scoring is not None:
        _write_scorecard(scoring, tally, paths, date, engine, summary)
    if summary.failed:
        sys.exit(2)
    sys.exit(0 if summary.all_conform else 1)


def _scorecard_setup(paths, output, shacl, check_guideline, summary_path, report_path, baseline_path, thresholds_path):
    """validate's scorecard options checked, and the thresholds and baseline files read, before any
    patient is: (summary path, report path, thresholds, (baseline path, baseline)), or None without them."""
    from .scorecard import ScorecardError, read_baseline, read_thresholds

    if summary_path is None and report_path is None:
        if baseline_path or thresholds_path:
            _fail("--baseline and --thresholds need --summary FILE or --report FILE")
        return None
    if check_guideline:
        _fail("--summary and --report are for patients, not --guideline")
    if shacl != "compiled":
        _fail("--summary and --report run the compiled shapes (--shacl compiled)")
    inputs = [Path(raw).resolve() for raw in paths if raw != "-"]
    inputs += [p.resolve() for p in (output, baseline_path, thresholds_path) if p is not None]
    if summary_path is not None and report_path is not None and summary_path.resolve() == report_path.resolve():
        _fail(f"{summary_path}: --summary and --report must be different files")
    for target in (summary_path, report_path):
        if target is not None and target.resolve() in inputs:
            _fail(f"{target}: is an input, the --baseline or --thresholds file or the --output file; "
                  "nothing is ever written to an input file")
    try:
        thresholds = read_thresholds(thresholds_path) if thresholds_path else {}
        baseline = (str(baseline_path), read_baseline(baseline_path)) if baseline_path else None
    except ScorecardError as error:
        _fail(str(error))
    return summary_path, report_path, (str(thresholds_path) if thresholds_path else None, thresholds), baseline


def _write_scorecard(scoring, tally, paths, date, engine, run: RunSummary, extra: dict | None = None) -> None:
    """The summary and report of ``tally``; ``extra``: provenance of the run's kind ({"spark": master})."""
    from .scorecard import compare, provenance, write_json

    summary_path, report_path, (thresholds_file, thresholds), baseline = scoring
    document = tally.summary({**provenance(paths, date, engine, run.as_json()), "thresholdsFile": thresholds_file,
                              **(extra or {})}, thresholds)
    if baseline is not None:
        document = compare(document, baseline[1], baseline[0])
    if summary_path is not None:
        with _output(summary_path, paths) as out:
            out.write(write_json(document))
    if report_path is not None:
        from .report import render_report

        with _output(report_path, paths) as out:
            out.write(render_report(document))


@main.command()
@click.argument("query")
@click.argument("paths", nargs=-1)
@as_of_option
@click.option("--format", "fmt", type=click.Choice(ALL_QUERY_FORMATS),
              help="SELECT: json (SPARQL 1.1 Query Results JSON), csv, tsv, text (a table); ASK: json, text; "
                   "CONSTRUCT/DESCRIBE: turtle, ntriples. Default: text (turtle) on a terminal, else json (turtle).")
@engine_option
@click.option("--endpoint", metavar="URL", help="A remote SPARQL 1.1 query endpoint to run the query on instead (see `load`).")
@click.option("--graph", "default_graph", metavar="IRI",
              help="With --endpoint: query the named graph IRI that `load --graph IRI` wrote (sent as default-graph-uri).")
@click.option("--timeout", type=click.FloatRange(min=1), default=30, show_default=True, help="Seconds to wait for the endpoint.")
@output_option
def query(query: str, paths: tuple[str, ...], as_of: str | None, fmt: str | None, engine: str, endpoint: str | None,
          default_graph: str | None, timeout: float, output: Path | None) -> None:
    """Run a SPARQL query (SELECT, ASK, CONSTRUCT or DESCRIBE; a file, or the name of a query in
    queries/) over the guideline and PATHS' patients with their derived facts, or over a remote endpoint.

    \b
    Examples:
      neuropathy-kg query patient-facts --as-of 2026-11-24 --format csv examples/
      neuropathy-kg query my-ask.rq --format text examples/
      neuropathy-kg query patient-facts --endpoint http://localhost:7878/query --graph urn:run:1
    \b
    Exit status: 0 done, 2 an unreadable input (the others are still queried), a query that fails, or usage.
    """
    from .engine import query_form
    from .results import FORMATS as QUERY_FORMATS, serialise

    text = _query_text(query)
    try:
        form = query_form(text)
    except Exception as error:  # pyparsing's ParseException, and whatever else the parser raises
        _fail(f"{query}: query failed: not a SPARQL query ({one_line(error)})")
    chosen = fmt or ("turtle" if form in ("construct", "describe") else _default_format(None, output))
    if chosen not in QUERY_FORMATS[form]:
        raise click.UsageError(f"{form.upper()} queries have no --format {chosen} (choose {', '.join(QUERY_FORMATS[form])})")
    errors = []
    if endpoint:
        if paths:
            _fail("give either PATHS (a local run) or --endpoint (a remote store), not both; load patients with `load`")
        from .endpoint import EndpointError, run_query

        try:
            result = run_query(endpoint, text, form, timeout, default_graph)
        except EndpointError as error:
            _fail(str(error))
    else:
        if default_graph:
            raise click.UsageError("--graph names a graph of a remote store: use it with --endpoint")
        from .pipeline import derive

        patients, errors = read_patients(paths) if paths else ([], [])
        errors = _shown(errors)
        store = derive(patients, _as_of(as_of), engine)
        try:
            result = store.query(text)
        except Exception as error:  # engines raise their own evaluation error types
            _fail(f"{query}: query failed: {one_line(error)}")
    with _output(output, paths) as out:
        out.write(serialise(result, chosen))
    sys.exit(2 if errors else 0)

@main.command()
@click.argument("paths", nargs=-1)
@as_of_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: text on a terminal, else json).")
@engine_option
def reason(paths: tuple[str, ...], as_of: str | None, fmt: str | None, engine: str) -> None:
    """OWL 2 DL reasoning (HermiT): consistency, unsatisfiable classes, each patient's categories.

    \b
    Example:
      neuropathy-kg reason --as-of 2026-11-24 examples/
    \b
    Exit status: 0 consistent, 1 inconsistent, 2 unusable input, no Java, or usage.
    """
    from .reasoning import ReasonerUnavailable, reason as run

    date = _as_of(as_of)
    patients, errors = _read(paths) if paths else ([], [])
    try:
        document = run(patients, date, engine)
    except ReasonerUnavailable as error:
        _fail(str(error))
    if _default_format(fmt) == "json":
        sys.stdout.write(_json_text(document))
    else:
        click.echo(render.reasoning(document))
    if errors:
        sys.exit(2)
    sys.exit(0 if document["consistent"] else 1)

@main.command()
@click.argument("others", nargs=-1, required=True, metavar="OTHER...")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: text on a terminal, else json).")
@engine_option
@output_option
def interactions(others: tuple[str, ...], fmt: str | None, engine: str, output: Path | None) -> None:
    """Contradictions, repetitions, alternatives and drug-drug interactions between this guideline and
    other guideline graphs (RDF in the linking vocabulary of ontology/interactions.ttl; docs/linking.md).

    \b
    Example:
      neuropathy-kg interactions --format text tests/guidelines/chronic-pain-fragment.ttl
    \b
    Exit status: 0 done, 2 an unreadable graph or usage.
    """
    from .linking import interactions as find, read_guideline_graph

    graphs = []
    for other in others:
        try:
            graphs.append(read_guideline_graph(other))
        except InputError as error:
            _fail(str(error))
    document = find(graphs, engine)
    with _output(output, others) as out:
        out.write(_json_text(document) if _default_format(fmt, output) == "json" else render.interactions(document) + "\n")

@main.command()
@click.argument("paths", nargs=-1)
@click.option("--store", "store_url", required=True, metavar="URL",
              help="Graph Store Protocol endpoint (Oxigraph: http://host:7878/store; Fuseki: http://host:3030/DATASET/data).")
@click.option("--graph", metavar="IRI", help="Named graph to load into (default: the default graph).")
@click.option("--guideline-graph", "guideline_graphs", multiple=True, metavar="OTHER",
              help="Also load another guideline graph (RDF, docs/linking.md), with the drug links the interaction queries read.")
@as_of_option
@click.option("--replace/--append", default=True, show_default=True,
              help="--replace: the graph is emptied first, so that it holds one assessment date only. --append: add "
                   "patients to it (the same --as-of only: checked through --endpoint).")
@click.option("--endpoint", metavar="URL", help="With --append: the store's SPARQL query endpoint, to read the date it holds.")
@click.option("--timeout", type=click.FloatRange(min=1), default=60, show_default=True)
def load(paths: tuple[str, ...], store_url: str, graph: str | None, guideline_graphs: tuple[str, ...], as_of: str | None,
         replace: bool, endpoint: str | None, timeout: float) -> None:
    """Load the guideline, PATHS' patients with their derived facts, and other guideline graphs into a
    remote store, so that every query in queries/ runs there unchanged (query --endpoint). The graph is
    replaced (HTTP PUT) unless --append: a store never holds two assessment dates at once.

    \b
    Examples:
      neuropathy-kg load --store http://localhost:7878/store --as-of 2026-11-24 examples/
      neuropathy-kg load --append --endpoint http://localhost:7878/query --store http://localhost:7878/store \\
          --as-of 2026-11-24 more-patients/
    \b
    Exit status: 0 done, 2 unusable input, a store that fails, a different date already held, or usage.
    """
    from .endpoint import EndpointError, held_assessment_dates, redact, upload
    from .pipeline import CHUNK_SIZE, derive

    if not paths and not guideline_graphs:
        _fail("nothing to load: give patient PATHS, --guideline-graph OTHER, or both")
    if not replace and not endpoint:
        raise click.UsageError("--append needs --endpoint URL (the store's query endpoint), to check the assessment date it holds")
    date = _as_of(as_of)
    ontology = guideline.ontology()
    others = []
    if guideline_graphs:
        from .linking import read_guideline_graph

        for other in guideline_graphs:
            try:
                others.append(read_guideline_graph(other))
            except InputError as error:
                _fail(str(error))
    loaded, failed = 0, False

    def work(chunk):
        enriched = derive(chunk, date, "oxigraph").to_graph() - ontology
        upload(store_url, enriched.serialize(format="nt", encoding="utf-8"), graph, timeout)
        return [{"patient": p.id} for p in chunk]

    try:
        if not replace:
            held = held_assessment_dates(endpoint, graph, timeout)
            if held - {date.isoformat()}:
                _fail(f"{store_url}: holds the assessment of {', '.join(sorted(held))}; load with --as-of "
                      f"{min(held)}, or --replace to start again at {date.isoformat()}")
        # --replace: PUT replaces the graph's content with the guideline (Graph Store Protocol).
        upload(store_url, guideline.ontology_ntriples(), graph, timeout, replace=replace)
        if others:
            from .linking import loadable

            upload(store_url, loadable(others), graph, timeout)
        if paths:
            results, summary = _population(paths, work, CHUNK_SIZE["oxigraph"], 1, None, None)
            loaded, failed = len(results), summary.failed
    except EndpointError as error:
        _fail(str(error))
    click.echo(f"neuropathy-kg: {'replaced' if replace else 'added to'} {graph or 'the default graph'} at {redact(store_url)}: "
               f"the guideline, {render.plural(len(others), 'other guideline graph')} and "
               f"{render.plural(loaded, 'patient')}", err=True)
    sys.exit(2 if failed else 0)

@main.group()
def export() -> None:
    """Write the guideline in other standard forms."""

@export.command("fhir-cpg")
@output_option
def export_fhir_cpg(output: Path | None) -> None:
    """The guideline as HL7 FHIR Clinical Practice Guidelines resources (R4B): one Bundle with a
    PlanDefinition, ActivityDefinitions with dosage, Citations and ValueSets (docs/linking.md).

    \b
    Example:
      neuropathy-kg export fhir-cpg --output guideline-cpg.json
    \b
    Exit status: 0 done, 2 the export cannot be made or written.
    """
    from .cpg import ExportError, export_bundle

    try:
        bundle = export_bundle()
    except ExportError as error:
        _fail(str(error))
    with _output(output, ()) as out:
        out.write(_json_text(bundle))

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@as_of_option
def serve(host: str, port: int, as_of: str | None) -> None:
    """Serve the guideline over HTTP until interrupted: CDS Hooks 2.0 discovery (GET /cds-services),
    the patient-view and order-select services (POST /cds-services/ID, feedback at .../ID/feedback) and
    FHIR POST /PlanDefinition/$apply (README, section 'CDS Hooks service'). Needs the 'serve' extra.

    \b
    Examples:
      neuropathy-kg serve --port 8080
      curl http://127.0.0.1:8080/cds-services
      curl -X POST -H 'Content-Type: application/json' -d @patient-view.json \\
           http://127.0.0.1:8080/cds-services/patient-view
    \b
    Exit status: 0 stopped (Ctrl-C or SIGTERM), 2 the address cannot be listened on (a port in use, an
    unknown host), the service cannot start (the guideline cannot be loaded), the 'serve' extra is
    missing, or usage.
    """
    try:
        import fastapi  # noqa: F401
        import httpx  # noqa: F401
        import msgspec  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        _fail(f"serve needs the 'serve' extra (pip install 'neuropathy-kg[serve]'): {one_line(error)}")
    from .service import ServeError, serve as run

    date = _as_of(as_of) if as_of else None
    try:
        run(host, port, date)
    except ServeError as error:  # the address cannot be listened on
        _fail(str(error))


@main.command()
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("build/docs"), show_default=True)
def docs(output: Path) -> None:
    """Write the HTML documentation: one pyLODE page per ontology (the guideline, the patient
    vocabulary) and the catalogue page, linked both ways (needs the docs extra).

    \b
    Example:
      neuropathy-kg docs --output build/docs
    \b
    Exit status: 0 done, 2 pyLODE or jinja2 missing, or the folder cannot be written.
    """
    from .output import OutputError
    from .publish import PublishError, docs as write

    try:
        pages = write(output)
    except OutputError as error:
        _fail(str(error))
    except (PublishError, OSError) as error:
        _fail(f"{output}: {error}")
    for page in pages:
        click.echo(f"wrote {page}", err=True)

@main.command()
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("build/release"), show_default=True)
@click.option("--version", "version", metavar="X.Y.Z", help="Version to stamp (default: the package version).")
def release(output: Path, version: str | None) -> None:
    """Write the ontology release: Turtle, RDF/XML, JSON-LD with its version IRI, and SHA256SUMS.

    \b
    Example:
      neuropathy-kg release --output build/release --version 0.1.0
    \b
    Exit status: 0 done, 2 the folder cannot be written.
    """
    from .output import OutputError
    from .publish import release as write

    try:
        files = write(output, version)
    except OutputError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"{output}: {error}")
    for path in files:
        click.echo(f"wrote {path}", err=True)

def _query_text(name: str) -> str:
    path = Path(name)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            _fail(f"{name}: cannot read query ({error})")
    known = guideline.named_queries()
    if name in known:
        return known[name].read_text(encoding="utf-8")
    _fail(f"{name}: no such query file, and no query of that name in queries/ (known: {', '.join(sorted(known))})")
    return ""

if __name__ == "__main__":
    main()
