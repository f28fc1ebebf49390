"""FHIR Bulk Data NDJSON: its lines, the patient each line belongs to, buckets by patient, spooling.
Every FHIR input of a run is spooled here as one export (a Bundle as one line per entry, written by
fhir.export_lines), and which copy of a resource given twice counts (counted_copy) is decided here too.

The resolution of a reference to a patient lives here, once, and every reader calls it: the spooler
(which line goes to which bucket), the FHIR converter (which patient a record belongs to, in an NDJSON
bucket, a Bundle or a lone resource). The small public functions below work on one line or one resource
and keep no state, so that another engine (a Spark job over a Bulk export, say) can reuse them as they
are and put every line in the same bucket this one does:

- :func:`resource_of_line` - one NDJSON line as a FHIR resource (or an InputError naming file:line);
- :func:`line_key` - the patient a resource belongs to, as a :class:`Target` (an id, an identifier or a
  full URL still to be looked up), or None where it names none;
- :func:`patient_identifiers` - the identifier keys a Patient resource answers to;
- :func:`bucket_of` - the bucket of a patient id, for a given number of buckets;
- :class:`PatientDirectory` - resolves a Target to a patient id against the Patient resources read.

A resource whose patient cannot be resolved is reported with its file and line, never attached to a
patient made up from the reference's text.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import orjson

from .model import MEGABYTE, InputError, one_line

# ---------------------------------------------------------------- lines and resources


class EntrySource(str):
    """The name of a FHIR JSON document (a Bundle, a lone resource) spooled as export lines, one line per
    entry: a position in it is "FILE, entry N" (see position), not a line of the file."""


class ResourceSource(str):
    """The name of a FHIR JSON file that is one lone resource, spooled as one export line: a position in
    it is the file."""


def position(source: str, number: int) -> str:
    """Where a spooled line came from, as problems name it: "FILE:LINE" of an NDJSON file, "FILE, entry N"
    of a Bundle (EntrySource), "FILE" of a lone resource (ResourceSource)."""
    if isinstance(source, EntrySource):
        return f"{source}, entry {number}"
    return str(source) if isinstance(source, ResourceSource) else f"{source}:{number}"


def parse_json(data: bytes):
    """JSON text as Python values: orjson, several times faster, and where orjson refuses a text (NaN,
    integers over 64 bits, lone surrogates, other encodings, deep nesting) the standard library, so that
    what is accepted, and every error message, stays the standard library's."""
    return parse_json_exact(data)[0]


def parse_json_exact(data: bytes) -> tuple[object, bool]:
    """parse_json, and whether orjson read the text (then orjson writes it back as it was read)."""
    try:
        return orjson.loads(data), True
    except orjson.JSONDecodeError:
        return json.loads(data), False


def resource_of_line(where: str, line: bytes) -> dict:
    """One NDJSON line as a FHIR resource; an InputError naming its file and line where it is not one."""
    try:
        resource = parse_json(line)
    except (ValueError, RecursionError) as error:
        raise InputError(where, f"not valid JSON ({one_line(error)})") from None
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise InputError(where, "not a FHIR resource (no resourceType)")
    return resource


# ---------------------------------------------------------------- references to patients

#: Resource types that belong to a patient and that the FHIR converter reads (fhir.py has a handler for
#: each; a test checks the two agree). One of them naming no patient that can be resolved is reported.
PATIENT_RESOURCE_TYPES = frozenset({
    "Condition", "Observation", "Procedure", "AllergyIntolerance",
    "MedicationRequest", "MedicationStatement", "MedicationAdministration",
})
#: Resource types other resources use by reference (medicationReference), which name no patient: they
#: reach the buckets of the lines that reference them, once each.
REFERENCED_RESOURCE_TYPES = frozenset({"Medication"})


class Target(NamedTuple):
    """What a reference names: ``kind`` "id" (a Patient id, final), "identifier" ("system|value", looked
    up among the Patients' identifiers) or "url" (a full URL such as urn:uuid:..., looked up among a
    Bundle's entries)."""

    kind: str
    value: str


def referenced_id(reference: object, kind: str) -> str | None:
    """The id of the ``kind`` resource a reference's text names: ``KIND/ID``, ``KIND/ID/_history/N`` and
    absolute URLs ending so (``https://x/fhir/KIND/ID``), a query or fragment after it ignored; None for
    anything else (another type, a contained ``#ref``, a full URL to look up)."""
    if not isinstance(reference, str) or not reference:
        return None
    parts = reference.split("?", 1)[0].split("#", 1)[0].rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-1] if len(parts) >= 2 and parts[-2] == kind and parts[-1] else None


def reference_target(reference: str) -> Target | None:
    """The patient a reference's text names: the id of ``Patient/ID`` (referenced_id); ``urn:uuid:...``
    and ``urn:oid:...`` are full URLs to look up; anything else (a Group, a contained ``#ref``) names no
    patient."""
    patient_id = referenced_id(reference, "Patient")
    if patient_id is not None:
        return Target("id", patient_id)
    if isinstance(reference, str) and reference.startswith(("urn:uuid:", "urn:oid:")):
        return Target("url", reference)
    return None


def identifier_key(identifier) -> str | None:
    """An Identifier as the key it is looked up by: "system|value" (system may be empty); None without a value."""
    if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str) or not identifier["value"]:
        return None
    system = identifier.get("system")
    return f"{system if isinstance(system, str) else ''}|{identifier['value']}"


def patient_identifiers(resource: dict) -> list[str]:
    """The identifier keys (see identifier_key) a Patient resource answers to."""
    found = resource.get("identifier")
    return [key for item in (found if isinstance(found, list) else []) if (key := identifier_key(item)) is not None]


def reference_of(value) -> Target | None:
    """The patient a FHIR Reference (the value of ``subject`` or ``patient``) names: by its ``reference``
    text (reference_target), else by its logical ``identifier``."""
    if not isinstance(value, dict):
        return None
    if value.get("reference"):
        return reference_target(value["reference"])
    key = identifier_key(value.get("identifier"))
    return Target("identifier", key) if key is not None else None


def line_key(resource: dict) -> Target | None:
    """The patient a resource belongs to: a Patient its own id; any other resource its top-level
    ``subject``, else ``patient``, reference. None where it names none."""
    if resource.get("resourceType") == "Patient":
        ident = resource.get("id")
        return Target("id", str(ident)) if isinstance(ident, (str, int)) and str(ident) else None
    subject = resource.get("subject")
    return reference_of(subject if subject is not None else resource.get("patient"))


def bucket_of(patient_id: str, count: int) -> int:
    """The bucket (0 .. count-1) of a patient id: crc32 of its UTF-8, stable across runs and processes."""
    return zlib.crc32(patient_id.encode("utf-8", "surrogatepass")) % count


def medication_key(resource: dict) -> str | None:
    """The "Medication/ID" a resource's medicationReference names (absolute or versioned), or None."""
    value = resource.get("medicationReference")
    medication_id = referenced_id(value.get("reference") if isinstance(value, dict) else None, "Medication")
    return None if medication_id is None else f"Medication/{medication_id}"


@dataclass
class PatientDirectory:
    """The Patient resources of one input, by what references use to name them."""

    by_identifier: dict[str, set[str]] = field(default_factory=dict)
    by_url: dict[str, str] = field(default_factory=dict)

    def add(self, resource: dict, full_url: str | None = None) -> None:
        target = line_key(resource)
        if target is None:
            return
        for key in patient_identifiers(resource):
            self.by_identifier.setdefault(key, set()).add(target.value)
        if full_url:
            self.by_url[full_url] = target.value

    def resolve(self, target: Target | None) -> tuple[str | None, str | None]:
        """(patient id, None), or (None, why the reference names no patient)."""
        if target is None:
            return None, "names no patient (no subject or patient reference to a Patient)"
        if target.kind == "id":
            return target.value, None
        if target.kind == "url":
            found = self.by_url.get(target.value)
            return (found, None) if found is not None else (None, f"reference {target.value} names no Patient entry of its Bundle")
        ids = self.by_identifier.get(target.value, set())
        if len(ids) == 1:
            return next(iter(ids)), None
        if not ids:
            return None, f"identifier {target.value} names no Patient in the input"
        return None, f"identifier {target.value} names {len(ids)} different Patients ({', '.join(sorted(ids)[:3])})"


class Routed(NamedTuple):
    """Where one NDJSON line goes (see route)."""

    target: Target | None  # its patient: kind "id" final, else resolved after the pass (None: a Medication)
    identifiers: tuple[str, ...]  # a Patient's identifier keys, for the directory of that later pass
    medication: str | None  # the "Medication/ID" its medicationReference names: that Medication joins its bucket
    provides: str | None  # a Medication's own "Medication/ID": it goes only to the buckets that name it


def route(where: str, line: bytes | None) -> Routed | None:
    """Where the spooler sends one (non-blank) NDJSON line; None for a resource the converter does not
    read and no one references (Practitioner, Encounter...), not copied; an InputError naming ``where``
    for a line that is skipped (``line`` None: longer than MAX_LINE_BYTES; not JSON; a Patient without
    an id; a patient's resource naming no patient). Every engine that buckets an export calls this."""
    if line is None:
        raise InputError(where, f"line longer than {MAX_LINE_BYTES // MEGABYTE} MB: skipped")
    resource = resource_of_line(where, line)
    kind = resource["resourceType"]
    if kind in REFERENCED_RESOURCE_TYPES:
        ident = resource.get("id")
        return Routed(None, (), None, f"{kind}/{ident}") if isinstance(ident, str) else None
    target = line_key(resource)
    if kind == "Patient":
        if target is None:
            raise InputError(where, "Patient without an id: skipped")
        return Routed(target, tuple(patient_identifiers(resource)), medication_key(resource), None)
    if kind not in PATIENT_RESOURCE_TYPES:
        return None
    if target is None:
        raise unresolved(where, resource, PatientDirectory().resolve(None)[1])
    return Routed(target, (), medication_key(resource), None)


def resolved(directory: PatientDirectory, where: str, line: bytes) -> tuple[str, str | None]:
    """(patient id, the "Medication/ID" it references) of a line routed to a later pass (its target an
    identifier or a full URL), looked up in the directory of every Patient line read (their
    ``Routed.identifiers``); an InputError naming ``where`` where it names no one patient."""
    resource = resource_of_line(where, line)
    patient, why = directory.resolve(line_key(resource))
    if patient is None:
        raise unresolved(where, resource, why)
    return patient, medication_key(resource)


def unresolved(where: str, resource: dict, why: str | None) -> InputError:
    """The problem of a resource whose patient cannot be resolved."""
    label = f"{resource.get('resourceType')}/{resource.get('id', '?')}"
    return InputError(where, f"{label} {why}: skipped")


# ---------------------------------------------------------------- the same resource given twice


def content_key(resource: dict) -> bytes | str:
    """A resource's content as a key: identical copies have the same key, whatever the order of their keys."""
    try:
        return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer over 64 bits
        return json.dumps(resource, sort_keys=True, default=str)


def _version(resource: dict) -> int | None:
    version = (resource.get("meta") or {}).get("versionId") if isinstance(resource.get("meta"), dict) else None
    return int(version) if isinstance(version, (str, int)) and not isinstance(version, bool) and str(version).isdigit() else None


def _last_updated(resource: dict) -> dt.datetime | None:
    stamp = (resource.get("meta") or {}).get("lastUpdated") if isinstance(resource.get("meta"), dict) else None
    try:
        moment = dt.datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        return None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment


def latest(versions: list[dict]) -> dict | None:
    """The one later than every other of a resource's differing versions, by meta.versionId (numeric), else
    by meta.lastUpdated; None where neither tells (missing on one, or the latest held twice)."""
    for order in (_version, _last_updated):
        keys = [order(v) for v in versions]
        if any(k is None for k in keys):
            continue
        top = max(keys)
        if keys.count(top) == 1:
            return versions[keys.index(top)]
    return None


def counted_copy(copies: list[dict]) -> int | None:
    """fhir-input.md: the same resource (type and id; for a patient's resource, for the same patient) given
    twice counts once. Which of its copies, in input order, counts: the first where all are identical;
    else the latest version (see latest) of the differing ones; None where no version tells the latest,
    so that none is read and no rule uses a contested value. The Bundle and NDJSON readers call it for
    every resource of a patient, the spooler and the Spark job for Medications."""
    distinct: dict[bytes | str, int] = {}
    for index, copy in enumerate(copies):
        distinct.setdefault(content_key(copy), index)
    if len(distinct) == 1:
        return 0
    found = latest([copies[index] for index in distinct.values()])
    return next((index for index in distinct.values() if copies[index] is found), None)


def chosen_copy(label: str, copies: list[tuple[str, bytes]]) -> tuple[int | None, InputError | None]:
    """Which of a Medication's copies, each (where, line) in input order, counts (counted_copy), or None
    and the problem, named at its last copy, where they differ and no version tells the latest. The
    spooler and the Spark job call it alike."""
    if len(copies) == 1:
        return 0, None
    pick = counted_copy([parse_json(line) for _where, line in copies])
    if pick is not None:
        return pick, None
    return None, InputError(copies[-1][0], contested(label, len(copies)))


def contested(label: str, count: int, patient: str | None = None) -> str:
    """The problem of a resource whose copies differ with no version to tell the latest (counted_copy None)."""
    whose = f" for patient {patient}" if patient is not None else ""
    return f"{label} appears {count} times{whose} with different content and no version to tell the latest: none is read"


# ---------------------------------------------------------------- buckets (spooled NDJSON)


def spooled_line(source: int, number: int, line: bytes) -> bytes:
    """An NDJSON line as it is spooled: prefixed with where it came from (read by ndjson_lines)."""
    return b"%d:%d\t%s\n" % (source, number, line)


def ndjson_lines(name: str, data: bytes, sources: tuple[str, ...] | None = None) -> Iterator[tuple[str, bytes]]:
    """(where, line) for every line that is not blank. Plain NDJSON: where = "file:line". Spooled NDJSON
    (buckets, ``sources`` given): each line starts with "INDEX:LINE\t", naming the line of
    ``sources[INDEX]`` it was copied from, so that problems point at the user's file, not the bucket."""
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        if sources is None:
            yield f"{name}:{number}", line
            continue
        origin, _tab, line = line.partition(b"\t")
        index, _colon, original = origin.partition(b":")
        yield position(sources[int(index)], int(original)), line


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
#: NDJSON exports over this size are spooled by every worker process at once (each a contiguous part).
PARALLEL_SPOOL_BYTES = 16 * MEGABYTE


def bucket_count(total_bytes: int) -> int:
    """How many buckets an NDJSON export of ``total_bytes`` is spooled into."""
    wanted = max(total_bytes // BUCKET_BYTES + 1, min(MIN_BUCKETS, total_bytes // MIN_BUCKET_BYTES + 1))
    if wanted > MIN_BUCKETS:  # a multiple of 4, so that 2 or 4 workers end together (9 buckets on 2: the last alone)
        wanted = -(-wanted // 4) * 4
    return max(1, min(MAX_BUCKETS, wanted))


def is_gzip(path: str | Path) -> bool:
    return str(path).lower().endswith(".gz")


def open_text(path: str | Path):
    """A file opened for reading (only), gzip-decompressed as it is read where its name ends in .gz."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def read_lines(item: Path | bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) of an NDJSON input, or of the lines of a file that start in [start, end) (start
    is the start of a line; a .gz file is always read whole); None for a line longer than MAX_LINE_BYTES
    (skipped unread)."""
    if isinstance(item, bytes):
        yield from enumerate(item.splitlines(), 1)
        return
    with open_text(item) as handle:  # read-only
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


def segments(files: list[tuple[str, Path | bytes]], parts: int) -> list[list[tuple[int, int, int]]]:
    """Public name of the cut used by spool (tests check it)."""
    return _segments(files, parts)


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


@dataclass(frozen=True)
class Bucket:
    """One bucket of a spooled export: its files in order (the Medications its lines reference first),
    and the NDJSON files its lines name by index."""

    name: str
    files: tuple[Path, ...]
    sources: tuple[str, ...]


@dataclass
class _PartResult:
    problems: list[tuple[int, int, InputError]]  # (file index, line, error), to be put in input order
    identifiers: dict[str, set[str]]
    medications: dict[str, list[tuple[int, int, int, int]]]  # "Medication/ID" -> its copies: (offset, length) in this part's file, (file index, line)
    needed: dict[int, set[str]]  # bucket -> "Medication/ID" its lines reference


def spool(files: list[tuple[str, Path | bytes]], folder: Path, mapper: Callable = map,
          parts: int = 1) -> Iterator[Bucket | InputError]:
    """Write NDJSON lines into buckets by patient (bucket_of the resolved patient id); lines that name a
    patient only by identifier are resolved after the pass, against every Patient line's identifiers;
    Medications go only to the buckets whose lines reference them, once each; lines of other resources
    that name no patient (Practitioner, Organization...) are not copied. Bad lines and resources whose
    patient cannot be resolved become errors naming file:line, in input order. A large export of plain
    files is spooled in ``parts`` contiguous parts at once (``mapper``: a Pool's map)."""
    total = sum(len(item) if isinstance(item, bytes) else item.stat().st_size for _name, item in files)
    count = bucket_count(total)
    names = ", ".join(sorted({name for name, _item in files}))
    sources = tuple(name for name, _item in files)
    parallel = (parts > 1 and total > PARALLEL_SPOOL_BYTES
                and all(isinstance(item, Path) and not is_gzip(item) for _name, item in files))
    if parallel:
        work = [(folder, count, part, [(index, *files[index], start, end) for index, start, end in run])
                for part, run in enumerate(_segments(files, parts))]
    else:
        work = [(folder, count, 0, [(index, name, item, 0, None) for index, (name, item) in enumerate(files)])]
    results: list[_PartResult] = list(mapper(_spool_part, work))
    problems = [found for result in results for found in result.problems]
    directory = PatientDirectory()
    for result in results:
        for key, ids in result.identifiers.items():
            directory.by_identifier.setdefault(key, set()).update(ids)
    needed: dict[int, set[str]] = {}
    for result in results:
        for index, keys in result.needed.items():
            needed.setdefault(index, set()).update(keys)
    pending = [folder / f"pending.{part}.ndjson" for part in range(len(work))]
    late = [open(folder / f"{k}.late.ndjson", "wb") for k in range(count)]
    try:
        for path in pending:
            for _number, located in read_lines(path):
                origin, _tab, line = located.partition(b"\t")
                index, _colon, number = origin.partition(b":")
                where = position(sources[int(index)], int(number))
                try:
                    patient, medication = resolved(directory, where, line)
                except InputError as error:
                    problems.append((int(index), int(number), error))
                    continue
                bucket = bucket_of(patient, count)
                late[bucket].write(located + b"\n")
                if medication is not None:
                    needed.setdefault(bucket, set()).add(medication)
    finally:
        for handle in late:
            handle.close()
    chosen = _chosen_medications(folder, results, sorted(set().union(*needed.values())), sources, problems)
    problems.sort(key=lambda item: (item[0], item[1]))
    yield from (error for _index, _number, error in problems)
    for k in range(count):
        medications = folder / f"{k}.medications.ndjson"
        with open(medications, "wb") as out:
            for key in sorted(needed.get(k, set())):
                if chosen.get(key) is not None:
                    out.write(chosen[key])
        bucket = tuple(path for path in (medications, *(folder / f"{k}.{part}.ndjson" for part in range(len(work))),
                                         folder / f"{k}.late.ndjson") if path.stat().st_size)
        if any(path != medications for path in bucket):
            yield Bucket(name=names, files=bucket, sources=sources)


def _chosen_medications(folder: Path, results: list[_PartResult], keys: list[str], sources: tuple[str, ...],
                        problems: list[tuple[int, int, InputError]]) -> dict[str, bytes | None]:
    """The spooled line of the copy that counts (chosen_copy over every copy in input order) of each
    Medication the buckets need; None, with its problem, where none does."""
    chosen: dict[str, bytes | None] = {}
    for key in keys:
        copies = [(part, *copy) for part, result in enumerate(results) for copy in result.medications.get(key, ())]
        if not copies:
            continue
        texts = []
        for part, offset, length, _source, _number in copies:
            with open(folder / f"medications.{part}.ndjson", "rb") as handle:
                handle.seek(offset)
                texts.append(handle.read(length))
        pick, problem = chosen_copy(key, [(position(sources[source], number), text.rstrip(b"\n").partition(b"\t")[2])
                                          for (_part, _offset, _length, source, number), text in zip(copies, texts)])
        chosen[key] = texts[pick] if pick is not None else None
        if problem is not None:
            problems.append((copies[-1][3], copies[-1][4], problem))
    return chosen


def _spool_part(task: tuple) -> _PartResult:
    """Spool one contiguous part of an export (in whichever process runs it) into its own bucket files
    ``K.PART.ndjson``, ``pending.PART.ndjson`` (lines naming their patient by identifier or full URL) and
    ``medications.PART.ndjson``."""
    folder, count, part, segments = task
    result = _PartResult([], {}, {}, {})
    buckets = [open(folder / f"{k}.{part}.ndjson", "wb") for k in range(count)]
    try:
        with open(folder / f"pending.{part}.ndjson", "wb") as pending, \
                open(folder / f"medications.{part}.ndjson", "wb") as medications:
            for source, name, item, start, end in segments:
                try:
                    for number, line in read_lines(item, start, end):
                        _spool_line(result, buckets, pending, medications, count, source, name, number, line)
                except (OSError, EOFError, zlib.error) as error:  # a truncated .gz, a file gone meanwhile
                    result.problems.append((source, 1 << 62, InputError(name, f"stopped reading ({one_line(error)}); the lines before were read")))
    finally:
        for handle in buckets:
            handle.close()
    return result


def _spool_line(result: _PartResult, buckets, pending, medications, count: int, source: int, name: str,
                number: int, line: bytes | None) -> None:
    if line is not None and not line.strip():
        return
    try:
        routed = route(position(name, number), line)
    except InputError as error:
        result.problems.append((source, number, error))
        return
    if routed is None:
        return
    located = spooled_line(source, number, line)
    if routed.provides is not None:
        result.medications.setdefault(routed.provides, []).append((medications.tell(), len(located), source, number))
        medications.write(located)
        return
    for key in routed.identifiers:
        result.identifiers.setdefault(key, set()).add(routed.target.value)
    if routed.target.kind != "id":
        pending.write(located)
        return
    bucket = bucket_of(routed.target.value, count)
    buckets[bucket].write(located)
    if routed.medication is not None:
        result.needed.setdefault(bucket, set()).add(routed.medication)
