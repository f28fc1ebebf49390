"""Population runs: stream patients in chunks, with memory that does not grow with their number, on
all cores.

RDF files are read one file at a time. Every FHIR input of a run is one export: Bulk Data NDJSON puts
one patient's resources on many lines of many files, and a patient may be split over Bundles too, so
Bundles are first written as export lines (fhir.export_lines) and then every line is spooled into
on-disk buckets by patient (ndjson.py: the patient id each line resolves to, hashed; a Medication goes
to the buckets whose lines reference it), then read one bucket at a time. Chunks of patients go to
worker processes as N-Triples; results come back in order.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import signal
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from . import fhir, ndjson
from .load import (Document, InputError, Patient, chunks, document_lines, export_format, inputs_in_order, one_line, read_document, read_input,
                   sniff_format)

@dataclass
class Batch:
    """Patients to process together, or the problems met while reading them."""

    patients: list[Patient]
    errors: list[InputError]


@dataclass(frozen=True)
class Unit:
    """A piece of input one process reads and converts by itself: an RDF file or some bytes, or a bucket of
    the FHIR export (its spool files: the Medications its lines reference, then one per spooling process,
    then the lines resolved after the pass)."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    bucket: tuple[Path, ...] = ()
    sources: tuple[str, ...] | None = None  # a bucket's NDJSON files, which its lines name by index


class StopRun(Exception):
    """A failure that retrying patient by patient cannot mend (a remote store that is down): it ends the
    run instead of being reported once per patient."""


class PatientFailure(InputError):
    """A patient whose data was read but could not be processed; the others in its chunk still are."""


def units(paths: Iterable[str | Document], spool: Path, mapper: Callable = map, parts: int = 1) -> Iterator[Unit | InputError]:
    """The input as units, in order. Every FHIR input (Bulk NDJSON files, Bundles, lone resources; paths
    or, from the library, documents in memory) is one export: Bundles are written as export lines under
    ``spool`` (fhir.export_lines: their references to their own entries resolved), then everything is
    spooled into buckets by patient (by ``parts`` processes at once through ``mapper``, a Pool's map, where
    the export is large), so a patient split over files of any kind is one patient. The export's buckets
    come at the place of the first FHIR input; RDF files are units of their own, as given. A path that
    cannot be read is reported and the others are still read."""
    errors: list[InputError] = []
    sources = list(inputs_in_order(paths, errors))
    yield from errors
    exports: list[tuple[str, Path | bytes] | None] = []  # None: a document, written under spool first
    documents: list[tuple[int, str, Path | bytes, Path]] = []
    later: list[Unit] | None = None  # the RDF units after the first FHIR input: after its buckets
    for source in sources:
        if isinstance(source, Path):
            fmt = export_format(source)
            name, item = str(source), source
        else:
            try:
                name, item = source if isinstance(source, tuple) else read_input(source)
                fmt = sniff_format(name, item)
            except InputError as error:
                yield error
                continue
            fmt = fmt if fmt in ("fhir-ndjson", "fhir-json") else None
        if fmt is None:
            unit = Unit(name=name, path=item) if isinstance(item, Path) else Unit(name=name, data=item)
            if later is None:
                yield unit
            else:
                later.append(unit)
            continue
        later = [] if later is None else later
        if fmt == "fhir-ndjson":
            exports.append((name, item))  # a file is streamed into buckets, never held whole
        else:
            documents.append((len(exports), name, item, spool / f"document.{len(documents)}.ndjson"))
            exports.append(None)
    for (index, _name, _item, path), (source, problems) in zip(documents, mapper(_export_document, documents)):
        yield from problems
        exports[index] = (source, path) if source is not None else None
    found = [part for part in exports if part is not None]
    if found:
        for bucket in ndjson.spool(found, spool, mapper, parts):
            yield bucket if isinstance(bucket, InputError) else Unit(name=bucket.name, bucket=bucket.files, sources=bucket.sources)
    yield from later or ()


def _export_document(task: tuple[int, str, Path | bytes, Path]) -> tuple[str | None, list[InputError]]:
    """A Bundle or lone resource (in whichever process runs it) written as export lines (fhir.export_lines)
    to its spool file: the name its lines are spooled under (None where it is not read) and its problems."""
    _index, name, item, path = task
    try:
        if isinstance(item, Path):
            name, data = read_input(item)
        else:
            data = item
        source, lines, problems = document_lines(name, data)
        with open(path, "wb") as out:
            for line in lines:
                out.write(line + b"\n")
        return source, problems
    except InputError as error:
        return None, [error]
    except OSError:  # a write error of the spool (a full disk): the run's, not this document's
        raise
    except Exception as error:  # noqa: BLE001 - the one-line contract
        return None, [InputError(name, f"could not be read ({one_line(error)})")]


def unit_batches(unit: Unit, size: int) -> Iterator[Batch]:
    """Read and convert one unit (in whichever process runs it) into chunks of patients."""
    try:
        if unit.bucket:  # an NDJSON bucket: the Medications its lines reference, then its lines, in input order
            data = b"".join(path.read_bytes() for path in unit.bucket)
            found, problems = read_document(unit.name, data, unit.sources)
        else:
            name, data = (unit.name, unit.data) if unit.data is not None else read_input(unit.path)
            found, problems = read_document(name, data)
    except InputError as error:
        yield Batch([], [error])
        return
    if problems:
        yield Batch([], problems)
    yield from (Batch(chunk, []) for chunk in chunks(found, size))


def batches(paths: Iterable[str], size: int) -> Iterator[Batch]:
    """Chunks of about ``size`` patients (load.chunks), in input order (NDJSON exports: by bucket, then patient id)."""
    with tempfile.TemporaryDirectory(prefix="neuropathy-kg-") as spool:
        for unit in units(paths, Path(spool)):
            if isinstance(unit, InputError):
                yield Batch([], [unit])
            else:
                yield from unit_batches(unit, size)


# ---------------------------------------------------------------- running chunks on all cores

_WORK: Callable[[list[Patient]], list[dict]] | None = None
_SIZE = 200


def _run_unit(unit: Unit) -> tuple[list[dict], list[InputError], list[str]]:
    """The results and problems of one unit, and (for an RDF file) the IRIs of its patients."""
    assert _WORK is not None
    results: list[dict] = []
    errors: list[InputError] = []
    iris: list[str] = []
    for batch in unit_batches(unit, _SIZE):
        errors.extend(batch.errors)
        if batch.patients:
            if not unit.bucket:
                iris.extend(str(patient.iri) for patient in batch.patients)
            done, failed = isolate(_WORK, batch.patients)
            results.extend(done)
            errors.extend(failed)
    return results, errors, iris


def _split_rdf(seen: dict[str, tuple[int, str]], index: int, unit: Unit, iris: list[str]) -> list[InputError]:
    """A patient (IRI) of an RDF file already met in another RDF file: reported. RDF files are read one at
    a time (a patient's graph is one file, as the project's tools write it), so each part was judged
    alone; never in silence (docs/decisions.md, "Order of patients")."""
    found = []
    for iri in iris:
        first, name = seen.setdefault(iri, (index, unit.name))
        if first != index:
            found.append(InputError(unit.name, f"patient {iri} is also in {name}: RDF files are read one at a time, so each "
                                               "part was judged alone; give a patient's graph in one file (query and reason "
                                               "merge them)"))
    return found


def isolate(work: Callable[[list[Patient]], list[dict]], patients: list[Patient]) -> tuple[list[dict], list[PatientFailure]]:
    """``work`` over a chunk; where the chunk fails, over each half again (down to single patients), so
    that one patient whose data breaks a step is reported by itself, the others' results stand, and a
    chunk of n patients with one such patient costs about 2 log2(n) retries, not n."""
    try:
        return work(patients), []
    except StopRun:
        raise
    except Exception as error:  # noqa: BLE001 - reported for the patient, or retried half by half
        if len(patients) == 1:
            return [], [PatientFailure(patients[0].source, f"patient {patients[0].id}: could not be processed ({one_line(error)})")]
    results, failures = [], []
    middle = len(patients) // 2
    for half in (patients[:middle], patients[middle:]):
        done, failed = isolate(work, half)
        results.extend(done)
        failures.extend(failed)
    return results, failures


class WorkerLost(StopRun):
    """A worker process died (killed by a signal, as the out-of-memory killer does): the units it and the
    units still queued were lost, so the run stops; ``str(error)`` is the one line shown."""


def _worker_started() -> None:
    """In each worker: a terminal's Ctrl-C (sent to the whole process group) is the parent's to handle,
    and SIGTERM (the parent's, when it stops) ends the worker at once, without a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop_workers(executor: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end every worker now (SIGTERM, then SIGKILL after a second). Python
    3.11 has no public call for it (3.14 adds terminate_workers): the executor's own process table."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    deadline = time.monotonic() + 1.0
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)


def _lost(units_lost: list[Unit], done: int) -> WorkerLost:
    names = sorted({name for unit in units_lost for name in unit.name.split(", ")})
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return WorkerLost(f"a worker process died (killed by a signal, as the out-of-memory killer does): the results "
                      f"of {len(units_lost)} of {done + len(units_lost)} parts of the input (files, or NDJSON buckets of "
                      f"patients; from {shown}) were lost and the run was stopped; run again with fewer --jobs or more memory")


class SpoolFailed(StopRun):
    """The NDJSON spool could not be written (its disk is full, a file size limit): the run stops."""


def _spool_failed(error: OSError, spool: str) -> SpoolFailed:
    where = error.filename or spool
    return SpoolFailed(f"{where}: cannot spool the NDJSON export ({error.strerror or type(error).__name__}); the spool "
                       f"folder is made under {Path(spool).parent} (TMPDIR chooses another) and needs about the export's size")


def _listed(found: Iterator[Unit], spool: str) -> Iterator[Unit]:
    """``found``, with a write error of the spool (an OSError while listing: the readers report their own
    problems as InputError) as SpoolFailed."""
    while True:
        try:
            unit = next(found)
        except StopIteration:
            return
        except OSError as error:
            raise _spool_failed(error, spool) from None
        yield unit


def run(paths: Iterable[str], size: int, work: Callable[[list[Patient]], list[dict]], jobs: int = 1,
        on_errors: Callable[[list[InputError]], None] = lambda errors: None,
        on_total: Callable[[int], None] | None = None) -> Iterator[list[dict]]:
    """Results of ``work`` for every unit of input (a file, an NDJSON bucket), in order; reading problems
    go to ``on_errors``; ``on_total`` is told how many units there are once they are listed (NDJSON
    spooled), before the first result (for a progress bar). With jobs > 1, each unit is read, converted
    and processed in a worker process (forked after the guideline is loaded), so reading runs on all
    cores too; results are the same, in the same order, whatever ``jobs``. A worker that dies raises
    WorkerLost (never a hang); when the run ends early (an exception, SIGINT/SIGTERM as SystemExit, the
    consumer closing the generator) the workers are stopped and the spool folder removed."""
    global _WORK, _SIZE
    _WORK, _SIZE = work, size
    seen: dict[str, tuple[int, str]] = {}  # IRI -> the unit (RDF file) its patient was read from (_split_rdf)

    def pending(found: Iterable[Unit | InputError]) -> Iterator[Unit]:
        for unit in found:
            if isinstance(unit, InputError):
                on_errors([unit])
            else:
                yield unit

    with tempfile.TemporaryDirectory(prefix="neuropathy-kg-") as spool:
        if jobs <= 1:
            found = _listed(pending(units(paths, Path(spool))), spool)
            if on_total is not None:  # listing units reads nothing but NDJSON, which is spooled anyway
                found = list(found)
                on_total(len(found))
            for index, unit in enumerate(found):
                results, errors, iris = _run_unit(unit)
                errors += _split_rdf(seen, index, unit, iris)
                if errors:
                    on_errors(errors)
                yield results
            return
        executor = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"), initializer=_worker_started)
        listed: list[Unit] = []
        try:
            try:
                # The units are listed (NDJSON spooled, by the workers) before any is handed out.
                listed = list(_listed(pending(units(paths, Path(spool), executor.map, jobs)), spool))
            except BrokenProcessPool:
                raise WorkerLost("a worker process died (killed by a signal, as the out-of-memory killer does) while "
                                 "spooling the NDJSON export: nothing was processed and the run was stopped") from None
            if on_total is not None:
                on_total(len(listed))
            futures = [executor.submit(_run_unit, unit) for unit in listed]
            for done, future in enumerate(futures):
                try:
                    results, errors, iris = future.result()
                except BrokenProcessPool:
                    raise _lost(listed[done:], done) from None
                futures[done] = None  # type: ignore[call-overload]  # its results are not kept here
                errors += _split_rdf(seen, done, listed[done], iris)
                if errors:
                    on_errors(errors)
                yield results
        finally:
            _stop_workers(executor)


def as_json_lines(work: Callable[[list[Patient]], list[dict]]) -> Callable[[list[Patient]], list[tuple[bool, str]]]:
    """``work`` whose results are (conforms, JSON line) pairs, encoded in the worker that ran it, so that
    the parent process only writes text (returning dicts cost it a fifth of a run in unpickling). Lines
    are compact JSON written by orjson (UTF-8 as is, like ensure_ascii=False; 5x the standard library)."""
    def encoded(patients: list[Patient]) -> list[tuple[bool, str]]:
        return [(r.get("conforms", True), orjson.dumps(r).decode() + "\n") for r in work(patients)]
    return encoded


def warm_up() -> None:
    """Parse the guideline once before forking, so that workers share it. Everything it made lives as
    long as the process: gc.freeze() takes it out of the cyclic garbage collector's sight, so that no
    collection walks those objects again and, in forked workers, none writes to the memory pages they
    share with the parent (the use the gc module's documentation gives for it)."""
    from . import fhir, guideline
    from .engine import new_store
    from .pipeline import compiled_shapes

    new_store("oxigraph").add_static_ntriples(guideline.ontology_ntriples())  # its quads, parsed once
    guideline.catalogue()
    guideline.fact_updates()
    guideline.action_queries()
    compiled_shapes()
    fhir.vocabulary()
    gc.collect()
    gc.freeze()
