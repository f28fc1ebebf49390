"""Population runs: stream patients in chunks, with memory that does not grow with their number, on
all cores.

RDF files and FHIR Bundles are read one file at a time. Bulk Data NDJSON puts one patient's resources
on many lines of many files, so its lines are first spooled into on-disk buckets by patient (a hash of
the patient id; resources naming no patient, such as Medication, go with every bucket), then read one
bucket at a time. Chunks of patients go to worker processes as N-Triples; results come back in order.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import rdflib
from rdflib import URIRef

from .load import InputError, Patient, _patients_in, _read_bytes, expand_paths, sniff_format

#: Bytes of NDJSON per bucket: a bucket's patients are converted together, so this bounds memory.
BUCKET_BYTES = 4_000_000
MAX_BUCKETS = 256
PATIENT_REFERENCE = re.compile(rb'"(?:subject|patient)"\s*:\s*\{[^{}]*?"reference"\s*:\s*"([^"]+)"')


@dataclass
class Batch:
    """Patients to process together, or the problems met while reading them."""

    patients: list[Patient]
    errors: list[InputError]


def batches(paths: Iterable[str], size: int) -> Iterator[Batch]:
    """Chunks of at most ``size`` patients, in input order (NDJSON exports: by bucket, then patient id)."""
    try:
        sources = list(expand_paths(paths))
    except InputError as error:
        yield Batch([], [error])
        return
    ndjson: list[tuple[str, Path | bytes]] = []
    for source in sources:
        try:
            if source != "-" and _is_ndjson_file(Path(source)):
                ndjson.append((str(source), Path(source)))  # streamed later, never held whole
                continue
            name, data = _read_bytes(source)
            if sniff_format(name, data) == "fhir-ndjson":
                ndjson.append((name, data))
                continue
            found, problems = _patients_in(name, data)
        except InputError as error:
            yield Batch([], [error])
            continue
        if problems:
            yield Batch([], problems)
        yield from _chunked(found, size)
    if ndjson:
        yield from _ndjson_batches(ndjson, size)


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


def _lines(item: Path | bytes) -> Iterator[bytes]:
    if isinstance(item, bytes):
        yield from item.splitlines()
        return
    with open(item, "rb") as handle:
        for line in handle:
            yield line.rstrip(b"\r\n")


def _chunked(patients: list[Patient], size: int) -> Iterator[Batch]:
    for start in range(0, len(patients), size):
        yield Batch(patients[start:start + size], [])


def _patient_key(line: bytes) -> str | None:
    """The patient a resource line belongs to, cheaply: a Patient's id, else its subject/patient reference."""
    if re.search(rb'"resourceType"\s*:\s*"Patient"', line):
        match = re.search(rb'"id"\s*:\s*"([^"]+)"', line)
        return match.group(1).decode() if match else None
    match = PATIENT_REFERENCE.search(line)
    if not match:
        return None
    return match.group(1).decode().rsplit("/", 1)[-1]


def _ndjson_batches(files: list[tuple[str, Path | bytes]], size: int) -> Iterator[Batch]:
    from . import fhir

    total = sum(len(item) if isinstance(item, bytes) else item.stat().st_size for _name, item in files)
    count = max(1, min(MAX_BUCKETS, total // BUCKET_BYTES + 1))
    names = ", ".join(sorted({name for name, _item in files}))
    with tempfile.TemporaryDirectory(prefix="neuropathy-kg-") as folder:
        buckets = [open(Path(folder) / f"{k}.ndjson", "wb") for k in range(count)]
        shared: list[bytes] = []
        problems: list[InputError] = []
        try:
            for name, item in files:
                for number, line in enumerate(_lines(item), 1):
                    if not line.strip():
                        continue
                    key = _patient_key(line)
                    if key is None:  # no patient named: shared with every bucket, if it is a resource
                        try:
                            fhir.ndjson_resource(name, number, line)
                        except InputError as error:
                            problems.append(error)
                            continue
                        shared.append(line)
                        continue
                    index = int(hashlib.blake2b(key.encode(), digest_size=4).hexdigest(), 16) % count
                    buckets[index].write(line + b"\n")
        finally:
            for handle in buckets:
                handle.close()
        if problems:
            yield Batch([], problems)
        common = b"\n".join(shared) + b"\n" if shared else b""
        for k in range(count):
            data = (Path(folder) / f"{k}.ndjson").read_bytes()
            if not data:
                continue
            found, bucket_problems, _count = fhir.to_patients(names, common + data, ndjson=True)
            if bucket_problems:
                yield Batch([], bucket_problems)
            yield from _chunked(found, size)


# ---------------------------------------------------------------- running chunks on all cores

def _serialise(patients: list[Patient]) -> list[tuple[str, str, str, bytes]]:
    return [(str(p.iri), p.id, p.source, p.graph.serialize(format="nt", encoding="utf-8")) for p in patients]


def _deserialise(items: list[tuple[str, str, str, bytes]]) -> list[Patient]:
    patients = []
    for iri, pid, source, data in items:
        graph = rdflib.Graph()
        graph.parse(data=data, format="nt")
        patients.append(Patient(iri=URIRef(iri), id=pid, source=source, graph=graph))
    return patients


_WORK: Callable[[list[Patient]], list[dict]] | None = None


def _run_chunk(items) -> list[dict]:
    assert _WORK is not None
    return _WORK(_deserialise(items))


def run(paths: Iterable[str], size: int, work: Callable[[list[Patient]], list[dict]], jobs: int = 1,
        on_errors: Callable[[list[InputError]], None] = lambda errors: None) -> Iterator[list[dict]]:
    """Results of ``work`` for every chunk of patients, in order; reading problems go to ``on_errors``.
    With jobs > 1, chunks run in worker processes (forked after the guideline is loaded)."""
    global _WORK
    _WORK = work

    def patient_chunks() -> Iterator[list]:
        for batch in batches(paths, size):
            if batch.errors:
                on_errors(batch.errors)
            if batch.patients:
                yield _serialise(batch.patients) if jobs > 1 else batch.patients

    if jobs <= 1:
        for patients in patient_chunks():
            yield work(patients)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(processes=jobs) as pool:
        yield from pool.imap(_run_chunk, patient_chunks())


def warm_up() -> None:
    """Parse the guideline once before forking, so that workers share it."""
    from . import guideline
    from .pipeline import compiled_shapes

    guideline.ontology_ntriples()
    guideline.catalogue()
    guideline.fact_updates()
    guideline.action_queries()
    compiled_shapes()

