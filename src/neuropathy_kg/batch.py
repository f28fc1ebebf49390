"""Population runs: stream patients in chunks, with memory that does not grow with their number, on
all cores.

RDF files and FHIR Bundles are read one file at a time. Bulk Data NDJSON puts one patient's resources
on many lines of many files, so its lines are first spooled into on-disk buckets by patient (a hash of
the patient id; resources naming no patient, such as Medication, go with every bucket), then read one
bucket at a time. Chunks of patients go to worker processes as N-Triples; results come back in order.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import signal
import re
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from .load import MEGABYTE, InputError, Patient, _read_bytes, chunks, expand_paths, one_line, read_document, sniff_format

#: Bytes of NDJSON per bucket: a bucket's patients are converted together, so this bounds memory. A
#: bucket is also one unit of work for a worker process, and each unit pays a fixed cost (an Oxigraph
#: store with the ontology, every query planned once), so buckets are large; an export is still cut
#: into at least MIN_BUCKETS buckets (where each keeps MIN_BUCKET_BYTES) so that the last ones do not
#: leave cores idle. The count depends on the export's size only, never on --jobs: the output order
#: (by bucket, then patient id) is the same whatever the number of workers.
BUCKET_BYTES = 4_000_000
MAX_BUCKETS = 256
MIN_BUCKETS = 8
MIN_BUCKET_BYTES = 250_000
#: The longest NDJSON line (one resource) read; a longer one is reported and skipped, never held whole.
MAX_LINE_BYTES = 64 * MEGABYTE
PATIENT_REFERENCE = re.compile(rb'"(?:subject|patient)"\s*:\s*\{[^{}]*?"reference"\s*:\s*"([^"]+)"')


@dataclass
class Batch:
    """Patients to process together, or the problems met while reading them."""

    patients: list[Patient]
    errors: list[InputError]


@dataclass(frozen=True)
class Unit:
    """A piece of input one process reads and converts by itself: a file, some bytes, or an NDJSON
    bucket (its spool files, one per spooling process, plus the lines that name no patient, which every
    bucket shares)."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    bucket: tuple[Path, ...] = ()
    shared: tuple[Path, ...] = ()
    sources: tuple[str, ...] | None = None  # a bucket's NDJSON files, which its lines name by index


class StopRun(Exception):
    """A failure that retrying patient by patient cannot mend (a remote store that is down): it ends the
    run instead of being reported once per patient."""


class PatientFailure(InputError):
    """A patient whose data was read but could not be processed; the others in its chunk still are."""


def units(paths: Iterable[str], spool: Path, mapper: Callable = map, parts: int = 1) -> Iterator[Unit | InputError]:
    """The input as units, in order; NDJSON exports are spooled into buckets under ``spool`` first (by
    ``parts`` processes at once through ``mapper``, a Pool's map, where the export is large)."""
    try:
        sources = list(expand_paths(paths))
    except InputError as error:
        yield error
        return
    ndjson: list[tuple[str, Path | bytes]] = []
    for source in sources:
        if source != "-" and _is_ndjson_file(Path(source)):
            ndjson.append((str(source), Path(source)))  # streamed into buckets, never held whole
        elif source == "-":
            try:
                name, data = _read_bytes(source)
            except InputError as error:
                yield error
                continue
            if sniff_format(name, data) == "fhir-ndjson":
                ndjson.append((name, data))
            else:
                yield Unit(name=name, data=data)
        else:
            yield Unit(name=str(source), path=Path(source))
    if ndjson:
        yield from _spool(ndjson, spool, mapper, parts)


def unit_batches(unit: Unit, size: int) -> Iterator[Batch]:
    """Read and convert one unit (in whichever process runs it) into chunks of patients."""
    try:
        if unit.bucket:  # an NDJSON bucket: the shared lines, then the bucket's, in input order
            data = b"".join(path.read_bytes() for path in (*unit.shared, *unit.bucket))
            found, problems = read_document(unit.name, data, unit.sources)
        else:
            name, data = (unit.name, unit.data) if unit.data is not None else _read_bytes(unit.path)
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


def _is_ndjson_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:  # read-only; only the head, to sniff
            head = handle.read(65536)
    except OSError:
        return False  # _read_bytes reports it
    if not head.strip():
        return False
    lines = head.splitlines()
    if len(head) == 65536 and len(lines) > 2:
        head = b"\n".join(lines[:2])
    return sniff_format(str(path), head) == "fhir-ndjson"


def _lines(item: Path | bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) of an NDJSON input, or of the lines of a file that start in [start, end) (start
    is the start of a line); None for a line longer than MAX_LINE_BYTES (skipped unread)."""
    if isinstance(item, bytes):
        yield from enumerate(item.splitlines(), 1)
        return
    with open(item, "rb") as handle:  # read-only
        number = 1
        while handle.tell() < start:  # the lines before this segment, counted, not kept
            block = handle.read(min(MEGABYTE, start - handle.tell()))
            number += block.count(b"\n")
        while (end is None or handle.tell() < end) and (line := handle.readline(MAX_LINE_BYTES + 1)):
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield number, None
            else:
                yield number, line.rstrip(b"\r\n")
            number += 1


def _segments(files: list[tuple[str, Path | bytes]], parts: int) -> list[list[tuple[int, int, int]]]:
    """The export cut into ``parts`` contiguous runs of whole lines of about equal size, each a list of
    (file index, start, end) byte ranges: spooled in parallel and put back together in order, they give
    the buckets exactly the lines, in exactly the order, that one process would."""
    sizes = [item.stat().st_size for _name, item in files]
    total = sum(sizes)
    cuts = []  # (file index, offset of a line start) where each part after the first begins
    for k in range(1, parts):
        target, before = total * k // parts, 0
        for index, size in enumerate(sizes):
            if target < before + size:
                cuts.append((index, _line_start(files[index][1], target - before)))
                break
            before += size
    bounds = [(0, 0), *sorted(set(cuts)), (len(files) - 1, sizes[-1])]
    runs = []
    for (first, begin), (last, finish) in zip(bounds, bounds[1:]):
        run = [(index, begin if index == first else 0, finish if index == last else sizes[index])
               for index in range(first, last + 1)]
        runs.append([segment for segment in run if segment[1] < segment[2]])
    return [run for run in runs if run]


def _line_start(path: Path, offset: int) -> int:
    """The offset of the first line that starts at or after ``offset`` in a file."""
    if offset == 0:
        return 0
    with open(path, "rb") as handle:  # read-only
        handle.seek(offset - 1)
        while block := handle.read(65536):
            newline = block.find(b"\n")
            if newline >= 0:
                return handle.tell() - len(block) + newline + 1
    return path.stat().st_size


PATIENT_TYPE = re.compile(rb'"resourceType"\s*:\s*"Patient"')
RESOURCE_ID = re.compile(rb'"id"\s*:\s*"([^"]+)"')


def _patient_key(line: bytes) -> bytes | None:
    """The patient a resource line belongs to, cheaply: a Patient's id, else its subject/patient reference
    (the id part). The quoted word "Patient" alone appears in a Patient's resourceType, rarely elsewhere."""
    if b'"Patient"' in line and PATIENT_TYPE.search(line):
        match = RESOURCE_ID.search(line)
        return match.group(1) if match else None
    match = PATIENT_REFERENCE.search(line)
    if not match:
        return None
    return match.group(1).rsplit(b"/", 1)[-1]


def bucket_count(total_bytes: int) -> int:
    """How many buckets an NDJSON export of ``total_bytes`` is spooled into."""
    wanted = max(total_bytes // BUCKET_BYTES + 1, min(MIN_BUCKETS, total_bytes // MIN_BUCKET_BYTES + 1))
    return max(1, min(MAX_BUCKETS, wanted))


#: NDJSON exports over this size are spooled by every worker process at once (each a contiguous part).
PARALLEL_SPOOL_BYTES = 16 * MEGABYTE


def _spool(files: list[tuple[str, Path | bytes]], folder: Path, mapper: Callable = map,
           parts: int = 1) -> Iterator[Unit | InputError]:
    """Write NDJSON lines into buckets by patient; bad lines become errors; one Unit per bucket. A large
    export on files is spooled in ``parts`` contiguous parts at once (``mapper``: a Pool's map)."""
    total = sum(len(item) if isinstance(item, bytes) else item.stat().st_size for _name, item in files)
    count = bucket_count(total)
    names = ", ".join(sorted({name for name, _item in files}))
    sources = tuple(name for name, _item in files)
    if parts > 1 and total > PARALLEL_SPOOL_BYTES and all(isinstance(item, Path) for _name, item in files):
        work = [(folder, count, part, [(index, *files[index], start, end) for index, start, end in run])
                for part, run in enumerate(_segments(files, parts))]
    else:
        work = [(folder, count, 0, [(index, name, item, 0, None) for index, (name, item) in enumerate(files)])]
    problems = [error for found in mapper(_spool_part, work) for error in found]
    yield from problems
    shared = tuple(path for part in range(len(work)) if (path := folder / f"shared.{part}.ndjson").stat().st_size)
    for k in range(count):
        bucket = tuple(path for part in range(len(work)) if (path := folder / f"{k}.{part}.ndjson").stat().st_size)
        if bucket:
            yield Unit(name=names, bucket=bucket, shared=shared, sources=sources)


def _spool_part(task: tuple) -> list[InputError]:
    """Spool one contiguous part of an export (in whichever process runs it) into its own bucket files
    ``K.PART.ndjson`` and ``shared.PART.ndjson``; returns the problems met, in input order."""
    from . import fhir

    folder, count, part, segments = task
    buckets = [open(folder / f"{k}.{part}.ndjson", "wb") for k in range(count)]
    problems: list[InputError] = []
    with open(folder / f"shared.{part}.ndjson", "wb") as shared:
        try:
            for source, name, item, start, end in segments:
                for number, line in _lines(item, start, end):
                    if line is None:
                        problems.append(InputError(f"{name}:{number}", f"line longer than {MAX_LINE_BYTES // MEGABYTE} MB: skipped"))
                        continue
                    if not line.strip():
                        continue
                    located = fhir.spooled_line(source, number, line)
                    key = _patient_key(line)
                    if key is None:  # no patient named: shared with every bucket, if it is a resource
                        try:
                            fhir.ndjson_resource(f"{name}:{number}", line)
                        except InputError as error:
                            problems.append(error)
                            continue
                        shared.write(located)
                        continue
                    index = zlib.crc32(key) % count  # stable across runs and processes, unlike hash()
                    buckets[index].write(located)
        finally:
            for handle in buckets:
                handle.close()
    return problems


# ---------------------------------------------------------------- running chunks on all cores

_WORK: Callable[[list[Patient]], list[dict]] | None = None
_SIZE = 200


def _run_unit(unit: Unit) -> tuple[list[dict], list[InputError]]:
    assert _WORK is not None
    results: list[dict] = []
    errors: list[InputError] = []
    for batch in unit_batches(unit, _SIZE):
        errors.extend(batch.errors)
        if batch.patients:
            done, failed = isolate(_WORK, batch.patients)
            results.extend(done)
            errors.extend(failed)
    return results, errors


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
            for unit in found:
                results, errors = _run_unit(unit)
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
                    results, errors = future.result()
                except BrokenProcessPool:
                    raise _lost(listed[done:], done) from None
                futures[done] = None  # type: ignore[call-overload]  # its results are not kept here
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
    from .pipeline import compiled_shapes

    guideline.ontology_ntriples()
    guideline.catalogue()
    guideline.fact_updates()
    guideline.action_queries()
    compiled_shapes()
    fhir.vocabulary()
    gc.collect()
    gc.freeze()
