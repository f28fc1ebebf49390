"""Population runs on Apache Spark: the embedded path's per-chunk work, run as Spark tasks.

Spark reads the FHIR Bulk NDJSON export (plain or compressed, any Hadoop path) and sends each line where
the embedded spooler sends it, by the spooler's own functions (ndjson.route, ndjson.resolved,
ndjson.bucket_of): a line naming its patient by id (Patient/ID, versioned, an absolute URL) is keyed by
it; one naming it by identifier is resolved after a first pass against every Patient line's identifiers
(a join); one whose patient cannot be resolved is reported as FILE:LINE; a Medication reaches only the
buckets whose lines reference it. The patients go into buckets of about BUCKET_PATIENTS by
ndjson.bucket_of. Each bucket is then read and processed in a Python worker exactly as batch.py processes
one of its spooled buckets: its lines in the spooler's order through load.read_document; its patients in
chunks (load.chunks) through batch.isolate and the caller's work (pipeline.recommend_chunk or
validate_chunk: one Oxigraph store per chunk); each result encoded by batch.as_json_lines. So each output
line is the embedded ``--jsonl`` line of that patient (tests/test_spark.py). Nothing clinical lives here,
and no rule of identity.

Output: JSON Lines part files in DIR (Spark's layout, with _SUCCESS); the problems met (bad lines,
patients that could not be processed) as text part files in DIR/_errors/, the first ERRORS_SHOWN of
them also on standard error; with ``tables``, Parquet tables of actions or findings in DIR/parquet/.

The scorecard (validate --summary, issue 18) is aggregated by Spark: with ``tally`` (scorecard.Tally),
the work is scorecard.chunk_work's and each patient gives its JSON line and its scorecard.Digest, the
same two the embedded workers send to the parent; Spark reduces the digests with treeAggregate, whose
steps are Tally.add (within a task) and Tally.merge (between tasks, in a tree), and the driver receives
one Tally, never a line. What is counted, over which population, against which threshold stays in
scorecard.py and ontology/data-quality.ttl.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

from .load import InputError, Patient, chunks, one_line, read_document

#: Patients per bucket: one Spark task reads, converts and processes a bucket, in one Oxigraph store
#: (pipeline.CHUNK_SIZE["oxigraph"] is 1,000 too); the number of buckets is the number of tasks.
BUCKET_PATIENTS = 1000
#: Problems printed on standard error; all of them are in DIR/_errors/.
ERRORS_SHOWN = 100
#: The driver's log configuration for runs the CLI starts (errors only; a failed job is one line).
LOG_CONFIG = "spark-log4j2.properties"
#: Files a folder contributes: NDJSON, plain or compressed by a codec Hadoop reads.
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".ndjson.bz2", ".ndjson.zst", ".ndjson.lz4", ".ndjson.snappy",
                   ".ndjson.deflate")


class SparkUnavailable(Exception):
    """pyspark is not installed, Java cannot start, or the cluster cannot be reached: one line to show."""


@dataclass
class SparkRun:
    """What a Spark run did (as cli.RunSummary counts it) and the first problems met."""

    processed: int = 0
    failed_patients: int = 0
    failed_inputs: int = 0
    non_conforming: int = 0
    problems: list[str] = field(default_factory=list)  # the first ERRORS_SHOWN, each one line
    written: bool = False  # DIR was written (not when no patient was found)
    tally: object | None = None  # with run(tally=...): the scorecard.Tally of every patient processed


# ---------------------------------------------------------------- keying lines by patient
# Every rule is ndjson.py's (route, resolved, bucket_of): the records below only carry its answers
# between Spark stages. A record is one of
#   ("error", file index, line, message)           a line reported and skipped
#   ("medication", "Medication/ID", line item)     a Medication, for the buckets whose lines name it
#   ("identifier", "system|value", patient id)     one identifier of a Patient line
#   ("owned", patient id, line item, "Medication/ID" or None, late)
#   ("pending", "system|value" or full URL, line item)   resolved against every Patient's identifiers
# where a line item is (file index, line number, bytes) and late is 1 for a line resolved after the pass
# (the embedded spooler writes those after a bucket's other lines).


def _routed(item: tuple[int, int, bytes], sources: tuple[str, ...]) -> list[tuple]:
    """The records of one non-blank line (see above), by ndjson.route."""
    from .ndjson import MAX_LINE_BYTES, route

    source, number, line = item
    try:
        routed = route(f"{sources[source]}:{number}", None if len(line) > MAX_LINE_BYTES else line)
    except InputError as error:
        return [("error", source, number, str(error))]
    if routed is None:
        return []
    if routed.provides is not None:
        return [("medication", routed.provides, item)]
    target = routed.target
    found = [("identifier", key, target.value) for key in routed.identifiers]
    if target.kind == "id":
        found.append(("owned", target.value, item, routed.medication, 0))
    else:
        found.append(("pending", target.value, item))
    return found


def _resolved(pair: tuple[str, tuple[tuple[int, int, bytes], set[str] | None]], sources: tuple[str, ...]) -> tuple:
    """A pending line joined with the ids of the Patients whose identifiers match its target: "owned"
    (late) or "error", by ndjson.resolved against a directory of just that identifier (the whole input's
    directory answers the same for it)."""
    from .ndjson import PatientDirectory, resolved

    key, (item, ids) = pair
    source, number, line = item
    try:
        patient, medication = resolved(PatientDirectory(by_identifier={key: ids or set()}), f"{sources[source]}:{number}", line)
    except InputError as error:
        return ("error", source, number, str(error))
    return ("owned", patient, item, medication, 1)


def _chosen(key: str, items, sources: tuple[str, ...]) -> tuple:
    """The copies of one Medication (line items) as the record of the one that counts, ("medication",
    "Medication/ID", line item), or the "error" of ndjson.chosen_copy where none does."""
    from .ndjson import chosen_copy, position

    copies = sorted(items)  # input order: file index, line
    pick, problem = chosen_copy(key, [(position(sources[source], number), line) for source, number, line in copies])
    if pick is None:
        return ("error", copies[-1][0], copies[-1][1], str(problem))
    return ("medication", key, copies[pick])


def bucket_count(patients: int) -> int:
    return max(1, round(patients / BUCKET_PATIENTS))


# ---------------------------------------------------------------- in the Python workers

_WARM = False


def _warm() -> None:
    """Parse the guideline once per Python worker (Spark reuses workers across tasks)."""
    global _WARM
    if not _WARM:
        import logging

        from . import batch

        logging.getLogger("rdflib").setLevel(logging.CRITICAL)  # as cli.main: the shapes report ill-typed literals
        batch.warm_up()
        _WARM = True


def process_bucket(lines: Iterable[tuple[int, tuple[tuple, tuple[int, int, bytes]]]], *, sources: tuple[str, ...],
                   name: str, size: int, work: Callable[[list[Patient]], list[dict]],
                   digests: bool = False) -> Iterator[tuple]:
    """One bucket (one Spark partition) as batch.unit_batches and batch._run_unit do a spooled bucket: its
    lines in the spooler's order (the Medications they reference, by id; its lines in input order; the
    lines resolved after the pass, in input order); ("line", conforms, JSON text) per patient,
    ("patient", message) per patient that failed, ("input", message) per problem in reading. With
    ``digests``, ``work`` gives ((conforms, JSON line), digest) per patient (scorecard.chunk_work with
    encode), and each line is followed by ("digest", digest)."""
    from . import batch
    from .ndjson import spooled_line

    found = sorted(lines, key=lambda pair: pair[1][0])
    if not any(order[0] > 0 for _bucket, (order, _item) in found):
        return  # Medications only (a bucket no patient landed in)
    _warm()
    data = b"".join(spooled_line(*item) for _bucket, (_order, item) in found)
    try:
        patients, problems = read_document(name, data, sources)
    except InputError as error:
        yield "input", str(error)
        return
    for problem in problems:
        yield "input", str(problem)
    encoded = work if digests else batch.as_json_lines(work)
    for chunk in chunks(patients, size):
        done, failed = batch.isolate(encoded, chunk)
        for item in done:
            (conforms, text), digest = item if digests else (item, None)
            yield "line", conforms, text.rstrip("\n")
            if digests:
                yield "digest", digest
        for failure in failed:
            yield "patient", str(failure)


def _read_line(item: tuple[bytes, int], source: int) -> tuple[int, int, bytes]:
    line, index = item
    return source, index + 1, line


# ---------------------------------------------------------------- the driver

def session(master: str, progress: bool = False):
    """A SparkSession on ``master`` (local[N], spark://, yarn, k8s://). Local runs bind to 127.0.0.1 and
    run the workers on this interpreter; a cluster's settings (spark.pyspark.python, executor
    environment) come from spark-submit or spark-defaults.conf."""
    try:
        from pyspark import SparkConf
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable("--spark needs pyspark: pip install 'neuropathy-kg[spark]' (Spark 4 runs on Java 17)") from None
    if "PYSPARK_GATEWAY_PORT" in os.environ:  # under spark-submit, whose JVM runs with its settings: read them
        from pyspark import SparkContext

        SparkContext._ensure_initialized()
    given = SparkConf()  # spark-submit's --conf options and spark-defaults.conf, which win; else empty
    builder = SparkSession.builder.master(master).appName("neuropathy-kg")
    defaults = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "true" if progress else "false"}
    log_config = Path(__file__).with_name(LOG_CONFIG)
    if log_config.is_file():  # package data: a wheel built without it keeps Spark's own log settings
        defaults["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log_config}"
    for key, value in defaults.items():
        if not given.contains(key):
            builder = builder.config(key, value)
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers: this interpreter, this install
    try:
        return builder.getOrCreate()
    except Exception as error:  # noqa: BLE001 - Java missing, a master that cannot be reached
        raise SparkUnavailable(f"Spark could not start on {master}: {one_line(error)}") from None


@contextlib.contextmanager
def started(master: str, progress: bool = False):
    """The SparkSession already active in this process (a notebook's, a test module's), used as it is
    and left running; else a new one on ``master`` (see session), stopped at the end."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        SparkSession = None
    active = SparkSession.getActiveSession() if SparkSession is not None else None
    spark = active if active is not None else session(master, progress)
    try:
        yield spark
    finally:
        if active is None:
            spark.stop()


def _hadoop(spark, raw: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(raw)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def list_inputs(spark, paths: Iterable[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(Hadoop path, name shown in messages) of every NDJSON file, in the order the embedded path reads
    them (files as given, folders recursively in sorted order), and the files given that are not NDJSON
    (reported and skipped). Raises InputError for a missing path, which ends the run as it does there."""
    found: list[tuple[str, str]] = []
    skipped: list[str] = []
    for raw in paths:
        path, fs = _hadoop(spark, raw)
        if not fs.exists(path):
            raise InputError(raw, "no such file or folder")
        status = fs.getFileStatus(path)
        shown = raw if "://" in raw else str(PurePosixPath(raw))  # a local path as the embedded path names it
        if not status.isDirectory():
            if raw.lower().endswith(NDJSON_SUFFIXES):
                found.append((str(status.getPath()), shown))
            else:
                skipped.append(str(InputError(raw, "--spark reads FHIR Bulk NDJSON only (.ndjson, plain or compressed: "
                                                   ".ndjson.gz, .ndjson.bz2, ...): skipped")))
            continue
        root = str(status.getPath()).rstrip("/")
        files = []
        listing = fs.listFiles(path, True)
        while listing.hasNext():
            child = str(listing.next().getPath())
            relative = child[len(root):].lstrip("/")
            parts = PurePosixPath(relative).parts
            if parts and not any(p.startswith((".", "_")) for p in parts) and relative.lower().endswith(NDJSON_SUFFIXES):
                files.append((parts, child, f"{shown.rstrip('/')}/{relative}"))
        if not files:
            raise InputError(raw, f"folder holds no NDJSON files ({' '.join(NDJSON_SUFFIXES)})")
        found.extend((child, shown) for _parts, child, shown in sorted(files))
    return found, skipped


def exists(spark, raw: str) -> bool:
    path, fs = _hadoop(spark, raw)
    return bool(fs.exists(path))


def run(spark, paths: Iterable[str], work: Callable[[list[Patient]], list[dict]], size: int, output: str,
        tables: tuple[str, ...] = (), tally: Callable[[], object] | None = None) -> SparkRun:
    """Run ``work`` over every patient of the NDJSON export at ``paths``; JSON Lines into ``output``
    (a folder that must not exist), problems into output/_errors/, ``tables`` ("actions", "findings")
    as Parquet in output/parquet/. With ``tally`` (scorecard.Tally; ``work`` then scorecard.chunk_work
    with encode), SparkRun.tally is the run's scorecard tally, reduced by Spark (see aggregate)."""
    from pyspark import StorageLevel

    sc = spark.sparkContext
    result = SparkRun()
    try:
        files, skipped = list_inputs(spark, paths)
    except InputError as error:
        result.failed_inputs, result.problems = 1, [str(error)]
        return result
    if not files:
        result.failed_inputs, result.problems = len(skipped), skipped[:ERRORS_SHOWN]
        return result
    sources = tuple(shown for _path, shown in files)
    name = ", ".join(sorted(set(sources)))
    reads = [sc.textFile(path, use_unicode=False).zipWithIndex().map(lambda item, k=k: _read_line(item, k))
             for k, (path, _shown) in enumerate(files)]
    records = sc.union(reads).filter(lambda item: item[2].strip()).flatMap(lambda item: _routed(item, sources))
    kept = [records.persist(StorageLevel.MEMORY_AND_DISK)]
    try:
        return _run_records(spark, records, kept, skipped, sources, name, work, size, output, tables, result, tally)
    finally:
        for rdd in kept:
            rdd.unpersist()


def _run_records(spark, records, kept: list, skipped: list[str], sources: tuple[str, ...], name: str, work, size: int,
                 output: str, tables: tuple[str, ...], result: SparkRun, tally=None) -> SparkRun:
    from pyspark import StorageLevel

    sc = spark.sparkContext
    # Pass 1: what the lines are (one job over the input, kept for the passes after it).
    kinds = records.map(lambda record: record[0]).countByValue()

    # Pass 2, only where lines name their patient by identifier (or full URL): the identifiers of every
    # Patient line, joined with those lines' targets and resolved by ndjson.resolved, as the embedded
    # spooler resolves them after its pass (a join, not a broadcast: the directory of 10^7 patients
    # would not fit a driver, and only the identifiers the pending lines name travel).
    owned = records.filter(lambda record: record[0] == "owned")
    errors = records.filter(lambda record: record[0] == "error")
    if kinds.get("pending"):
        directory = (records.filter(lambda record: record[0] == "identifier")
                     .map(lambda record: (record[1], record[2]))
                     .aggregateByKey(set(), lambda ids, pid: ids | {pid}, lambda a, b: a | b))
        late = (records.filter(lambda record: record[0] == "pending").map(lambda record: (record[1], record[2]))
                .leftOuterJoin(directory).map(lambda pair: _resolved(pair, sources)))
        kept.append(late.persist(StorageLevel.MEMORY_AND_DISK))
        owned = owned.union(late.filter(lambda record: record[0] == "owned"))
        errors = errors.union(late.filter(lambda record: record[0] == "error"))
    chosen = None
    if kinds.get("medication"):  # the copy of each Medication the lines name that counts (ndjson.chosen_copy)
        wanted = owned.filter(lambda record: record[3] is not None).map(lambda record: (record[3], None)).distinct()
        copies = (records.filter(lambda record: record[0] == "medication").map(lambda record: (record[1], record[2]))
                  .groupByKey().join(wanted).map(lambda pair: _chosen(pair[0], pair[1][0], sources)))
        kept.append(copies.persist(StorageLevel.MEMORY_AND_DISK))
        chosen = copies.filter(lambda record: record[0] == "medication").map(lambda record: (record[1], record[2]))
        errors = errors.union(copies.filter(lambda record: record[0] == "error"))
    patients = owned.map(lambda record: record[1]).countApproxDistinct(0.01)
    error_count = errors.count() if kinds.get("pending") or chosen is not None else kinds.get("error", 0)

    def ordered():  # the messages in input order (sortBy samples at once: only called where there are errors)
        return errors.sortBy(lambda record: (record[1], record[2])).map(lambda record: record[3])

    if patients == 0:
        result.failed_inputs = len(skipped) + error_count
        result.problems = (skipped + (ordered().take(ERRORS_SHOWN) if error_count else []))[:ERRORS_SHOWN]
        return result

    # Pass 3: buckets, one per partition (ndjson.bucket_of the patient id, the embedded spooler's hash),
    # each with the Medications its lines reference (the copy that counts, once), processed by the
    # caller's work in a Python worker.
    buckets = bucket_count(patients)
    from .ndjson import bucket_of

    keyed = owned.map(lambda record: (bucket_of(record[1], buckets), record))
    lines = keyed.map(lambda pair: (pair[0], ((1 + pair[1][4], *pair[1][2][:2]), pair[1][2])))
    if chosen is not None:
        needed = keyed.filter(lambda pair: pair[1][3] is not None).map(lambda pair: (pair[1][3], pair[0])).distinct()
        lines = lines.union(needed.join(chosen).map(lambda pair: (pair[1][0], ((0, pair[0]), pair[1][1]))))

    def bucket(items):
        return process_bucket(items, sources=sources, name=name, size=size, work=work, digests=tally is not None)

    done = lines.partitionBy(buckets, lambda k: k).mapPartitions(bucket)
    kept.append(done.persist(StorageLevel.MEMORY_AND_DISK))
    done.filter(lambda row: row[0] == "line").map(lambda row: row[2]).saveAsTextFile(output)
    result.written = True
    counts = done.map(lambda row: (row[0], row[1] if row[0] == "line" else None)).countByValue()
    result.processed = counts.get(("line", True), 0) + counts.get(("line", False), 0)
    result.non_conforming = counts.get(("line", False), 0)
    result.failed_patients = counts.get(("patient", None), 0)
    result.failed_inputs = counts.get(("input", None), 0) + len(skipped) + error_count
    if result.failed_patients or result.failed_inputs:
        failures = done.filter(lambda row: row[0] in ("patient", "input")).map(lambda row: row[1])
        problems = sc.parallelize(skipped, 1).union(ordered()).union(failures) if error_count else sc.parallelize(skipped, 1).union(failures)
        problems.saveAsTextFile(f"{output.rstrip('/')}/_errors")
        result.problems = problems.take(ERRORS_SHOWN)
    if tally is not None:
        result.tally = aggregate(done, tally)
    for table in tables:
        write_table(spark, table, output)
    return result


def aggregate(done, tally: Callable[[], object]):
    """The scorecard tally of a run's digests, reduced by Spark: treeAggregate from an empty tally, with
    Tally.add over each digest within a task and Tally.merge between tasks (in a tree, so that the
    driver merges a few partial tallies, not one per bucket). A tally is a few counters per check and
    at most scorecard.SAMPLE_SIZE sample patients per check, whatever the number of patients."""
    def add(kept, digest):
        kept.add([(None, digest)])
        return kept

    return (done.filter(lambda row: row[0] == "digest").map(lambda row: row[1])
            .treeAggregate(tally(), add, lambda left, right: left.merge(right), depth=2))


# ---------------------------------------------------------------- Parquet tables

def _schemas():
    """The JSON Lines' schema, as far as the tables read it (interface.md's recommend and validate
    patient objects). Every dose amount is a double: JSON 5 and 5.0 both read as 5.0, never as null."""
    from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

    from .pipeline import DOSE_FIELDS

    text, texts = StringType(), ArrayType(StringType())
    dose = StructType([StructField("drug", text), StructField("unit", text),
                       *(StructField(f, DoubleType()) for f in DOSE_FIELDS)])
    action = StructType([StructField("id", text), StructField("label", text), StructField("citations", texts),
                         StructField("dose", dose), StructField("due", text)])
    finding = StructType([StructField(f, text) for f in ("id", "severity", "focus", "value", "shape", "message")]
                         + [StructField("citations", texts)])
    return {
        "actions": StructType([StructField("patient", text), StructField("actions", ArrayType(action))]),
        "findings": StructType([StructField("patient", text), StructField("findings", ArrayType(finding))]),
    }


def write_table(spark, table: str, output: str) -> None:
    """output/parquet/TABLE: one row per action (patient, id, label, drug, unit, dose fields, due date,
    citations) or per finding (patient, id, severity, focus, value, shape, message, citations), read by
    Spark SQL from the JSON Lines just written (FAILFAST: a line that does not fit the schema stops it)."""
    from pyspark.sql import functions as F

    from .pipeline import DOSE_FIELDS

    root = output.rstrip("/")
    frame = spark.read.schema(_schemas()[table]).option("mode", "FAILFAST").json(f"{root}/part-*")
    rows = frame.select("patient", F.explode(table).alias("item"))
    if table == "actions":
        columns = [F.col("item.id").alias("id"), F.col("item.label").alias("label"),
                   F.col("item.dose.drug").alias("drug"), F.col("item.dose.unit").alias("unit"),
                   *(F.col(f"item.dose.{f}").alias(f) for f in DOSE_FIELDS),
                   F.to_date("item.due").alias("due"), F.col("item.citations").alias("citations")]
    else:
        columns = [F.col(f"item.{f}").alias(f) for f in ("id", "severity", "focus", "value", "shape", "message", "citations")]
    rows.select("patient", *columns).write.parquet(f"{root}/parquet/{table}")
