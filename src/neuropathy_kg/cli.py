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
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

import click
from rdflib import URIRef

from . import __version__, guideline
from .engine import ENGINES
from .pipeline import SHACL_MODES
from .load import InputError, one_line, read_patients

FORMATS = ("text", "json")


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
    """Where results go: standard output, or ``--output FILE`` written atomically (a temporary file in
    the same folder, flushed to disk, then renamed over FILE), so FILE is whole or untouched. An input
    file is never the output."""
    if path is None:
        yield sys.stdout
        return
    target = path.resolve()
    if any(raw != "-" and Path(raw).resolve() == target for raw in inputs):
        _fail(f"{path}: is one of the inputs; nothing is ever written to an input file")
    try:
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        _fail(f"{path}: cannot write output ({error.strerror or error})")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read(paths: tuple[str, ...]):
    if not paths:
        _fail("no input: give one or more files, folders, or - for standard input")
    patients, errors = read_patients(paths)
    for error in errors:
        click.echo(f"neuropathy-kg: {error}", err=True)
    if not patients and not errors:
        _fail("no patients found in the input")
    return patients, errors


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


@dataclass
class RunSummary:
    """What a population run did: patients with a result, patients that failed, inputs that could not be read."""

    processed: int = 0
    failed_patients: int = 0
    failed_inputs: int = 0
    all_conform: bool = True

    @property
    def failed(self) -> bool:
        return bool(self.failed_patients or self.failed_inputs)

    def as_json(self) -> dict:
        return {"patients": self.processed, "failedPatients": self.failed_patients, "failedInputs": self.failed_inputs}

    def line(self) -> str:
        return (f"{self.processed} patients processed, {self.failed_patients} patients failed, "
                f"{self.failed_inputs} inputs or lines skipped as unreadable")


def _population(paths: tuple[str, ...], work, size: int, jobs: int | None, jsonl: TextIO | None,
                progress: bool | None, tally=None) -> tuple[list[dict], RunSummary]:
    """Run ``work`` over every chunk of patients (a patient that breaks a chunk is retried alone and
    reported by itself); with ``jsonl``, results are written there as chunks finish. With ``tally`` (a
    scorecard.Tally), ``work`` gives (output, digest) pairs: the tally counts the digests in this same
    pass and the outputs go on as usual."""
    from . import batch

    if not paths:
        _fail("no input: give one or more files, folders, or - for standard input")
    summary = RunSummary()
    show = sys.stderr.isatty() if progress is None else progress
    results, started = [], time.monotonic()

    def report(errors) -> None:
        for error in errors:
            click.echo(f"neuropathy-kg: {error}", err=True)
            if isinstance(error, batch.PatientFailure):
                summary.failed_patients += 1
            else:
                summary.failed_inputs += 1

    batch.warm_up()
    if jsonl is not None and tally is None:  # each result leaves its worker as its JSON line: no pickled dicts, no encoding here
        work = batch.as_json_lines(work)
    for chunk in batch.run(paths, size, work, jobs or _default_jobs(paths), report):
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
        if show:
            rate = summary.processed / max(time.monotonic() - started, 1e-9)
            click.echo(f"\r{summary.processed} patients, {summary.failed_patients + summary.failed_inputs} failed, "
                       f"{rate:.0f} patients/s", err=True, nl=False)
    if show:
        click.echo("", err=True)
    if not summary.processed:  # nothing to report: no document (an --output file is left as it was)
        if summary.failed:
            sys.exit(2)  # each failure has had its line
        _fail("no patients found in the input")
    if show or jsonl is not None:  # JSON Lines have no document to carry the summary
        click.echo(f"neuropathy-kg: {summary.line()}", err=True)
    return results, summary


jsonl_option = click.option("--jsonl", is_flag=True, help="Write JSON Lines, one patient a line, as they are done (for huge runs).")
output_option = click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                             help="Write results to FILE (atomically: whole or not at all) instead of standard output.")
jobs_option = click.option("--jobs", type=click.IntRange(1, 256), help="Worker processes (default: all cores for inputs over 2 MB, else 1).")
progress_option = click.option("--progress/--no-progress", default=None, help="Progress on standard error (default: when it is a terminal).")
as_of_option = click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="Assessment date every time rule counts from (default: today).")
engine_option = click.option("--engine", type=click.Choice(ENGINES), default="oxigraph", show_default=True, help="SPARQL engine.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="neuropathy-kg")
def main() -> None:
    """The guideline 'Management of Relapsed Diabetic Neuropathy After IVIG' as a knowledge graph."""
    # rdflib logs a traceback for every ill-typed literal it meets; the shapes report those as data findings.
    logging.getLogger("rdflib").setLevel(logging.CRITICAL)


@main.command()
@click.argument("paths", nargs=-1)
@as_of_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: text on a terminal, else json).")
@engine_option
@jsonl_option
@output_option
@jobs_option
@progress_option
def recommend(paths: tuple[str, ...], as_of: str | None, fmt: str | None, engine: str, jsonl: bool, output: Path | None,
              jobs: int | None, progress: bool | None) -> None:
    """Derive the guideline's recommended actions for each patient in PATHS."""
    from .pipeline import CHUNK_SIZE, recommend_chunk, recommend_document

    date = _as_of(as_of)
    with _output(output, paths) as out:
        results, summary = _population(paths, lambda chunk: recommend_chunk(chunk, date, engine), CHUNK_SIZE[engine],
                                       jobs, out if jsonl else None, progress)
        if not jsonl:
            document = {**recommend_document(date, results), "summary": summary.as_json()}
            out.write(_json_text(document) if _default_format(fmt, output) == "json" else render_recommendations(document) + "\n")
    sys.exit(2 if summary.failed else 0)


@main.command()
@click.argument("paths", nargs=-1)
@as_of_option
@click.option("--format", "fmt", type=click.Choice(FORMATS + ("turtle",)), help="Output format (default: text on a terminal, else json).")
@click.option("--guideline", "check_guideline", is_flag=True, help="Check the guideline graph itself (shapes/guideline/) instead of patients.")
@click.option("--shacl", type=click.Choice(SHACL_MODES), default="compiled", show_default=True,
              help="compiled: each shape once per chunk of patients (fast); pyshacl: the reference engine, per patient.")
@engine_option
@jsonl_option
@output_option
@jobs_option
@progress_option
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.json",
              help="Also write the data-quality scorecard (every data check and pitfall, counted over the run) to FILE.json.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.html",
              help="Also write the scorecard as one self-contained HTML page (charts, check table, sample patients).")
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False, path_type=Path), metavar="SUMMARY.json",
              help="A previous run's --summary: show each check's change since then.")
@click.option("--thresholds", "thresholds_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.json",
              help="JSON {check id: largest acceptable failing share} over the defaults of ontology/data-quality.ttl.")
def validate(paths: tuple[str, ...], as_of: str | None, fmt: str | None, check_guideline: bool, shacl: str, engine: str,
             jsonl: bool, output: Path | None, jobs: int | None, progress: bool | None, summary_path: Path | None,
             report_path: Path | None, baseline_path: Path | None, thresholds_path: Path | None) -> None:
    """Run the SHACL shapes (export checks and clinical pitfalls) on each patient in PATHS."""
    from .pipeline import CHUNK_SIZE, validate_chunk, validate_document, validate_guideline, validation_report_graph

    if check_guideline:
        document = validate_guideline()
        with _output(output, ()) as out:
            if _default_format(fmt, output) == "json":
                out.write(_json_text(document))
            else:
                out.write(render_findings({"conforms": document["conforms"],
                                           "patients": [{"patient": "(guideline graph)", **document}]}) + "\n")
        sys.exit(0 if document["conforms"] else 1)
    date = _as_of(as_of)
    scoring = _scorecard_setup(paths, output, shacl, check_guideline, summary_path, report_path, baseline_path,
                               thresholds_path)
    with _output(output, paths) as out:
        if scoring is not None:
            from .scorecard import Tally, chunk_work

            tally = Tally()
            results, summary = _population(paths, chunk_work(date, engine, encode=jsonl), CHUNK_SIZE[engine], jobs,
                                           out if jsonl else None, progress, tally)
        else:
            results, summary = _population(paths, lambda chunk: validate_chunk(chunk, date, engine, shacl),
                                           CHUNK_SIZE[engine] if shacl == "compiled" else 1, jobs, out if jsonl else None, progress)
        if not jsonl:
            document = validate_document(date, results)
            chosen = _default_format(fmt, output)
            if chosen == "json":
                out.write(_json_text({**document, "summary": summary.as_json()}))
            elif chosen == "turtle":
                out.write(validation_report_graph(document).serialize(format="turtle"))
            else:
                out.write(render_findings(document) + "\n")
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


def _write_scorecard(scoring, tally, paths, date, engine, run: RunSummary) -> None:
    from .scorecard import compare, provenance, write_json

    summary_path, report_path, (thresholds_file, thresholds), baseline = scoring
    document = tally.summary({**provenance(paths, date, engine, run.as_json()), "thresholdsFile": thresholds_file},
                             thresholds)
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
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: text on a terminal, else json).")
@engine_option
@click.option("--endpoint", metavar="URL", help="A remote SPARQL 1.1 query endpoint to run the query on instead (see `load`).")
@click.option("--timeout", type=click.FloatRange(min=1), default=30, show_default=True, help="Seconds to wait for the endpoint.")
@output_option
def query(query: str, paths: tuple[str, ...], as_of: str | None, fmt: str | None, engine: str, endpoint: str | None,
          timeout: float, output: Path | None) -> None:
    """Run a SPARQL SELECT (a file, or the name of a query in queries/) over the guideline and PATHS,
    or over a remote endpoint."""
    from .engine import python_value
    from .pipeline import derive

    text = _query_text(query)
    errors = []
    if endpoint:
        if paths:
            _fail("give either PATHS (a local run) or --endpoint (a remote store), not both; load patients with `load`")
        from .endpoint import EndpointError, select

        try:
            rows = select(endpoint, text, timeout)
        except EndpointError as error:
            _fail(str(error))
    else:
        patients, errors = read_patients(paths) if paths else ([], [])
        for error in errors:
            click.echo(f"neuropathy-kg: {error}", err=True)
        store = derive(patients, _as_of(as_of), engine)
        try:
            rows = store.select(text)
        except Exception as error:  # engines raise their own syntax error types
            _fail(f"{query}: query failed: {one_line(error)}")
    table = [{k: str(v) if isinstance(v, URIRef) else python_value(v) for k, v in row.items()} for row in rows]
    with _output(output, paths) as out:
        if _default_format(fmt, output) == "json":
            out.write(_json_text({"query": query, "rows": table}))
        else:
            columns = sorted({k for row in table for k in row})
            out.write("".join("\t".join(line) + "\n" for line in [columns, *([str(row.get(c, "")) for c in columns] for row in table)]))
    sys.exit(2 if errors else 0)


@main.command()
@click.argument("paths", nargs=-1)
@as_of_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: text on a terminal, else json).")
@engine_option
def reason(paths: tuple[str, ...], as_of: str | None, fmt: str | None, engine: str) -> None:
    """OWL 2 DL reasoning (HermiT): consistency, unsatisfiable classes, each patient's categories."""
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
        click.echo(render_reasoning(document))
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
    other guideline graphs (RDF in the linking vocabulary of ontology/interactions.ttl; docs/linking.md)."""
    from .linking import interactions as find, read_guideline_graph, render

    graphs = []
    for other in others:
        try:
            graphs.append(read_guideline_graph(other))
        except InputError as error:
            _fail(str(error))
    document = find(graphs, engine)
    with _output(output, others) as out:
        out.write(_json_text(document) if _default_format(fmt, output) == "json" else render(document) + "\n")


@main.command()
@click.argument("paths", nargs=-1)
@click.option("--store", "store_url", required=True, metavar="URL",
              help="Graph Store Protocol endpoint (Oxigraph: http://host:7878/store; Fuseki: http://host:3030/DATASET/data).")
@click.option("--graph", metavar="IRI", help="Named graph to load into (default: the default graph).")
@click.option("--guideline-graph", "guideline_graphs", multiple=True, metavar="OTHER",
              help="Also load another guideline graph (RDF, docs/linking.md), with the drug links the interaction queries read.")
@as_of_option
@click.option("--timeout", type=click.FloatRange(min=1), default=60, show_default=True)
def load(paths: tuple[str, ...], store_url: str, graph: str | None, guideline_graphs: tuple[str, ...], as_of: str | None,
         timeout: float) -> None:
    """Load the guideline, PATHS' patients with their derived facts, and other guideline graphs into a
    remote store, so that every query in queries/ runs there unchanged (query --endpoint)."""
    from .endpoint import EndpointError, upload
    from .pipeline import CHUNK_SIZE, derive
    from . import guideline

    if not paths and not guideline_graphs:
        _fail("nothing to load: give patient PATHS, --guideline-graph OTHER, or both")
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
        upload(store_url, guideline.ontology_ntriples(), graph, timeout)
        if others:
            from .linking import loadable

            upload(store_url, loadable(others), graph, timeout)
        if paths:
            results, summary = _population(paths, work, CHUNK_SIZE["oxigraph"], 1, None, None)
            loaded, failed = len(results), summary.failed
    except EndpointError as error:
        _fail(str(error))
    click.echo(f"neuropathy-kg: loaded the guideline, {len(others)} other guideline graph(s) and {loaded} patients "
               f"into {store_url}", err=True)
    sys.exit(2 if failed else 0)


@main.group()
def export() -> None:
    """Write the guideline in other standard forms."""


@export.command("fhir-cpg")
@output_option
def export_fhir_cpg(output: Path | None) -> None:
    """The guideline as HL7 FHIR Clinical Practice Guidelines resources (R4B): one Bundle with a
    PlanDefinition, ActivityDefinitions with dosage, Citations and ValueSets (docs/linking.md)."""
    from .cpg import ExportError, export_bundle

    try:
        bundle = export_bundle()
    except ExportError as error:
        _fail(str(error))
    with _output(output, ()) as out:
        out.write(_json_text(bundle))


@main.command()
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("build/docs"), show_default=True)
def docs(output: Path) -> None:
    """Write the ontology's HTML documentation (pyLODE) and the catalogue page."""
    from .publish import PublishError, docs as write

    try:
        pages = write(output)
    except (PublishError, OSError) as error:
        _fail(f"{output}: {error}")
    for page in pages:
        click.echo(f"wrote {page}", err=True)


@main.command()
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("build/release"), show_default=True)
@click.option("--version", "version", metavar="X.Y.Z", help="Version to stamp (default: the package version).")
def release(output: Path, version: str | None) -> None:
    """Write the ontology release: Turtle, RDF/XML, JSON-LD with its version IRI, and SHA256SUMS."""
    from .publish import release as write

    try:
        files = write(output, version)
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


# ---------------------------------------------------------------- text output

def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent)


def _dose_text(dose: dict) -> str:
    unit = dose.get("unit", "")
    parts = [dose.get("drug", "")]
    labels = [("dailyAmount", "{}/day"), ("days", "x {} days"), ("totalAmount", "total {}"),
              ("startDailyAmount", "start {}/day"), ("targetDailyAmount", "target {}/day"),
              ("minDailyAmount", "range {}"), ("maxDailyAmount", "to {}/day")]
    for key, pattern in labels:
        if key in dose:
            value = dose[key] if key == "days" else f"{dose[key]} {unit}"
            parts.append(pattern.format(value))
    return " ".join(parts)


def render_recommendations(document: dict) -> str:
    lines = [f"Guideline {document['guideline']} (version {document['version']}), as of {document['asOf']}", ""]
    for patient in document["patients"]:
        facts = patient["facts"]
        crcl = facts["creatinineClearance"]
        crcl_text = f"{crcl['value']} mL/min ({crcl['method']}, band {facts['renalBand']})" if crcl else "unknown"
        scope = "in scope" if patient["inScope"] else "out of scope"
        if facts.get("deceased"):
            scope += ", deceased"
        lines.append(f"Patient {patient['patient']}: {scope}; phenotype {patient['phenotype'] or 'not recorded'}; "
                     f"relapse {'yes' if facts['relapse'] else 'no'}; previous IVIG responder "
                     f"{'yes' if facts['previousIvigResponder'] else 'no'}; CrCl {crcl_text}")
        if not patient["actions"]:
            lines.append("  (no actions)")
        for action in patient["actions"]:
            extra = []
            if "dose" in action:
                extra.append(_dose_text(action["dose"]))
            if "due" in action:
                extra.append(f"due {action['due']}")
            lines.append(f"  - {action['id']:<44} {action['label']}")
            if extra:
                lines.append(f"      {'; '.join(extra)}")
            lines.append(_wrap(f"{action['rationale']} [refs {', '.join(action['citations'])}]", "      "))
        for missing in patient["missingData"]:
            lines.append(f"  ! {missing['id']} (needed for {', '.join(missing['neededFor'])})")
        lines.append("")
    return "\n".join(lines).rstrip()


def render_findings(document: dict) -> str:
    lines = []
    for patient in document["patients"]:
        status = "conforms" if patient["conforms"] else "DOES NOT CONFORM"
        lines.append(f"Patient {patient['patient']}: {status}")
        for finding in patient["findings"]:
            lines.append(f"  {finding['severity'].upper():<9} {finding['id']}")
            lines.append(_wrap(f"{finding['message']} [refs {', '.join(finding['citations']) or '-'}]", "            "))
        lines.append("")
    verdict = "all conform" if document["conforms"] else "at least one violation"
    lines.append(f"{len(document['patients'])} checked: {verdict}")
    return "\n".join(lines)


def render_reasoning(document: dict) -> str:
    lines = [f"Knowledge graph {'consistent' if document['consistent'] else 'INCONSISTENT'} (OWL 2 DL, HermiT)"]
    if document["unsatisfiable"]:
        lines.append(f"Unsatisfiable classes: {', '.join(document['unsatisfiable'])}")
    if document.get("inconsistentPatients"):
        lines.append(f"Inconsistent patients: {', '.join(document['inconsistentPatients'])}")
    for patient in document["patients"]:
        lines.append(f"  {patient['patient']:<40} {', '.join(patient['categories']) or '(no category)'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
