"""`--spark MASTER` (spark.py) gives the embedded path's results: the same JSON line for every patient, the
same problems reported, the same exit codes, on a gzip export split over several files (issue 19).

Skipped where pyspark or Java 17 is missing. Every Spark run here shares one SparkSession (the CLI is
invoked in this process and uses the active session, spark.started), which keeps the module near a minute
and a half on the loaded 2-core machine."""

from __future__ import annotations

import copy
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT
from neuropathy_kg.cli import main
from neuropathy_kg.pipeline import DOSE_FIELDS

sys.path.insert(0, str(ROOT / "bench"))
from synthetic import generate  # noqa: E402


def _java_major() -> int:
    java = shutil.which("java")
    if java is None:
        return 0
    found = re.search(r'version "(\d+)', subprocess.run([java, "-version"], capture_output=True, text=True).stderr)
    return int(found.group(1)) if found else 0


pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'neuropathy-kg[spark]')")
if _java_major() < 17:
    pytest.skip("Spark 4 needs Java 17 or later", allow_module_level=True)

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
AS_OF = "2026-11-24"
BAD_LINE = b'{"resourceType": "Observation", "subject": {"reference": "Patient/p0000003"}, "status": '
MEDICATION = b'{"resourceType":"Medication","id":"m1","code":{"text":"pregabalin"}}'


@pytest.fixture(scope="module")
def spark_session():
    """One local[2] session for the module: every --spark run of the CLI uses it (spark.started) instead of
    starting and stopping its own, which is most of a small run's time."""
    from neuropathy_kg import spark

    session = spark.session("local[2]")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> dict[str, Path]:
    """300 synthetic patients as plain NDJSON (for the embedded path) and the same lines as gzip files
    (for Spark), Observation split over two files so that a patient's lines are in several files, with a
    Medication naming no patient (shared with every bucket) and a blank line; "bad" also has a line that
    is not JSON."""
    root = tmp_path_factory.mktemp("spark")
    plain = generate(300, root / "clean", seed=300)
    observations = (plain / "Observation.ndjson").read_bytes().splitlines(keepends=True)
    half = len(observations) // 2
    (plain / "Observation.ndjson").write_bytes(b"".join(observations[:half]))
    (plain / "Observation2.ndjson").write_bytes(b"".join(observations[half:]) + b"\n")
    (plain / "Medication.ndjson").write_bytes(MEDICATION + b"\n")
    shutil.copytree(plain, root / "bad")
    with open(root / "bad" / "Observation2.ndjson", "ab") as handle:
        handle.write(BAD_LINE + b"\n")
    found = {"root": root}
    for name in ("clean", "bad"):
        packed = root / f"{name}-gz"
        packed.mkdir()
        for path in (root / name).iterdir():
            (packed / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
        found[name], found[f"{name}-gz"] = root / name, packed
    return found


@pytest.fixture(scope="module")
def runs(export, spark_session) -> dict[str, dict]:
    """recommend on the export with a bad line, validate on the clean one: embedded (plain files) and
    Spark (gzip, with --parquet); then both Parquet tables. validate runs with the scorecard (--summary
    --report --thresholds --baseline, both paths) and, on Spark, buckets of 100 patients (3 tasks, so
    that Spark merges the tallies of several buckets): its lines are plain validate's (tests/test_scorecard.py
    shows them byte-identical with and without --summary), so one pair of runs serves both, which keeps
    the module's time."""
    from neuropathy_kg import spark as spark_module

    found = {}
    for command, which, table in (("recommend", "bad", "actions"), ("validate", "clean", "findings")):
        scoring = {way: _scorecard_args(export["root"], way) if command == "validate" else [] for way in ("embedded", "spark")}
        embedded_file = export["root"] / f"{command}.jsonl"
        embedded = _run(command, "--as-of", AS_OF, "--jsonl", "--output", str(embedded_file), *scoring["embedded"],
                        str(export[which]))
        folder = export["root"] / f"{command}-spark"
        with pytest.MonkeyPatch.context() as patch:
            if command == "validate":
                patch.setattr(spark_module, "BUCKET_PATIENTS", 100)
            spark = _run(command, "--as-of", AS_OF, "--spark", "local[2]", "--jsonl", "--output", str(folder), "--parquet",
                         *scoring["spark"], str(export[f"{which}-gz"]))
        found[command] = {"embedded": embedded, "spark": spark, "folder": folder, "table": table,
                          "expected": embedded_file.read_text(encoding="utf-8").splitlines(), "export": which}
    for run in found.values():
        table = run["folder"] / "parquet" / run["table"]
        run["rows"] = [row.asDict() for row in spark_session.read.parquet(str(table)).collect()]
    return found


def _scorecard_args(root: Path, way: str) -> list[str]:
    """validate's scorecard options for one run (way: embedded or spark), writing into root/scorecard/:
    a thresholds file making a pitfall acceptable at any share (its status must follow it) and a
    baseline where data-missing-body-weight passed and glycemic-control-neglected failed."""
    folder = root / "scorecard"
    folder.mkdir(exist_ok=True)
    thresholds, baseline = folder / "thresholds.json", folder / "baseline.json"
    thresholds.write_text(json.dumps({"glycemic-control-neglected": 1.0}))
    baseline.write_text(json.dumps({"scorecard": 1, "patients": 250, "provenance": {"asOf": "2026-10-01"}, "checks": [
        {"id": "data-missing-body-weight", "failing": 0, "passRate": 1.0, "status": "pass"},
        {"id": "glycemic-control-neglected", "failing": 3, "passRate": 0.9, "status": "fail"}]}))
    return ["--summary", str(folder / f"{way}.json"), "--report", str(folder / f"{way}.html"),
            "--thresholds", str(thresholds), "--baseline", str(baseline)]


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _problems(stderr: str, folder: Path) -> list[str]:
    """Problem lines, with file names made the same for both runs (FOLDER/x.ndjson.gz shown as EXPORT/x.ndjson)."""
    lines = [line.replace(str(folder), "EXPORT").replace(".ndjson.gz", ".ndjson")
             for line in stderr.splitlines() if line.startswith("neuropathy-kg: ")]
    return sorted(line for line in lines if "patients processed" not in line)


def _spark_lines(folder: Path) -> list[str]:
    assert (folder / "_SUCCESS").is_file()
    return [line for part in sorted(folder.glob("part-*")) for line in part.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("command", ["recommend", "validate"])
def test_spark_writes_the_embedded_jsonl_line_of_every_patient(runs, command):
    run = runs[command]
    found = _spark_lines(run["folder"])
    assert len(run["expected"]) == 300
    assert len(found) == len(run["expected"])  # no patient twice (a set would hide it)
    assert set(found) == set(run["expected"])


def test_bad_lines_are_reported_as_on_the_embedded_path(runs, export):
    run = runs["recommend"]
    assert run["spark"].exit_code == run["embedded"].exit_code == 2
    problems = _problems(run["spark"].stderr, export["bad-gz"])
    assert problems == _problems(run["embedded"].stderr, export["bad"])
    assert len(problems) == 1 and "EXPORT/Observation2.ndjson:" in problems[0] and "not valid JSON" in problems[0]
    written = [line for part in (run["folder"] / "_errors").glob("part-*") for line in part.read_text().splitlines()]
    assert len(written) == 1 and "not valid JSON" in written[0]


def test_validate_exits_1_on_a_violation_as_on_the_embedded_path(runs):
    run = runs["validate"]
    assert not all(json.loads(line)["conforms"] for line in run["expected"])
    assert run["spark"].exit_code == run["embedded"].exit_code == 1, run["spark"].stderr
    assert not (run["folder"] / "_errors").exists()


@pytest.mark.parametrize("command", ["recommend", "validate"])
def test_parquet_table_holds_each_action_or_finding_of_the_lines(runs, command):
    run = runs[command]
    table, rows = run["table"], run["rows"]
    results = [json.loads(line) for line in run["expected"]]
    wanted = sorted((r["patient"], item["id"], json.dumps(item.get("citations"))) for r in results for item in r[table])
    assert len(wanted) > 100
    assert sorted((row["patient"], row["id"], json.dumps(row["citations"])) for row in rows) == wanted
    if table == "actions":
        doses = {(r["patient"], a["id"]): a["dose"] for r in results for a in r["actions"] if "dose" in a}
        assert len(doses) > 50
        for row in rows:
            dose = doses.get((row["patient"], row["id"]), {})
            assert row["drug"] == dose.get("drug") and row["unit"] == dose.get("unit")
            for name in DOSE_FIELDS:
                assert row[name] == (float(dose[name]) if name in dose else None), (row, dose)
    else:
        fields = ("id", "severity", "focus", "value", "shape", "message")
        assert (sorted((row["patient"], *(row[f] for f in fields)) for row in rows)
                == sorted((r["patient"], *(f.get(k) for k in fields)) for r in results for f in r["findings"]))


def test_spark_refuses_what_it_cannot_do_in_one_line(export, spark_session, tmp_path):
    for args, message in [
        (["--spark", "local[1]", str(export["clean-gz"])], "--jsonl --output DIR"),
        (["--spark", "local[1]", "--jsonl", str(export["clean-gz"])], "--jsonl --output DIR"),
        (["--spark", "local[1]", "--jsonl", "--jobs", "2", "--output", str(tmp_path / "o"), str(export["clean-gz"])], "--jobs"),
        (["--parquet", str(export["clean-gz"])], "--parquet needs --spark"),
    ]:
        result = _run("recommend", *args)
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    existing = tmp_path / "existing"
    existing.mkdir()
    result = _run("recommend", "--spark", "local[1]", "--jsonl", "--output", str(existing / "x"), str(tmp_path / "missing"))
    assert result.exit_code == 2 and "no such file or folder" in result.stderr and not (existing / "x").exists()
    (existing / "x").write_text("kept")  # Spark writes a new folder, never over a file or into a folder
    result = _run("recommend", "--spark", "local[1]", "--jsonl", "--output", str(existing / "x"), str(export["clean-gz"]))
    assert result.exit_code == 2 and "already exists" in result.stderr and (existing / "x").read_text() == "kept"


# ---------------------------------------------------------------- the scorecard (issue 18 item 4)

#: Provenance that says how and on what the run was made, so differs between the two runs by design:
#: "spark" (the master; only on Spark runs) and "inputs" (the paths as given: here the gzip copy).
RUN_PROVENANCE = ("spark", "inputs")


@pytest.fixture(scope="module")
def scorecards(runs, export) -> dict:
    """The scorecards of the validate runs (see runs)."""
    folder = export["root"] / "scorecard"
    found = {way: {"result": runs["validate"][way],
                   "summary": json.loads((folder / f"{way}.json").read_text(encoding="utf-8")),
                   "report": (folder / f"{way}.html").read_text(encoding="utf-8")} for way in ("embedded", "spark")}
    found["lines"] = runs["validate"]["expected"]
    found["spark_lines"] = _spark_lines(runs["validate"]["folder"])
    found["baseline"] = str(folder / "baseline.json")
    return found


def test_spark_summary_equals_the_embedded_summary(scorecards, export):
    embedded, spark = (copy.deepcopy(scorecards[which]["summary"]) for which in ("embedded", "spark"))
    assert scorecards["spark"]["result"].exit_code == scorecards["embedded"]["result"].exit_code == 1
    assert spark["provenance"]["spark"] == "local[2]" and "spark" not in embedded["provenance"]
    assert spark["provenance"]["inputs"] == [str(export["clean-gz"])]
    assert embedded["provenance"]["inputs"] == [str(export["clean"])]
    for field in RUN_PROVENANCE:
        spark["provenance"].pop(field, None)
        embedded["provenance"].pop(field, None)
    assert spark == embedded
    assert len(list((export["root"] / "validate-spark").glob("part-*"))) == 3  # 3 tasks' tallies were merged
    # and the summary is one that could differ: counts, samples, a threshold and a baseline applied
    assert spark["patients"] == 300 and 0 < spark["conformingPatients"] < 300
    rows = {row["id"]: row for row in spark["checks"]}
    assert {row["status"] for row in rows.values()} >= {"pass", "fail"}
    glycemic = rows["glycemic-control-neglected"]
    assert glycemic["failing"] > 0 and glycemic["threshold"] == 1.0 and glycemic["status"] == "pass"
    assert glycemic["change"]["status"] == "fixed" and "glycemic-control-neglected" in spark["baseline"]["fixed"]
    assert spark["baseline"]["file"] == scorecards["baseline"]
    assert sum(len(row["samplePatients"]) for row in rows.values()) > 10
    assert all(len(row["samplePatients"]) <= 5 for row in rows.values())


def test_spark_summary_counts_its_own_lines(scorecards):
    """Spark's lines with --summary are the embedded lines, and the summary counts them."""
    lines = scorecards["spark_lines"]
    assert len(lines) == 300 and set(lines) == set(scorecards["lines"])
    results = [json.loads(line) for line in lines]
    rows = {row["id"]: row for row in scorecards["spark"]["summary"]["checks"]}
    failing = {}
    for result in results:
        for ident in {f["id"] for f in result["findings"]}:
            failing[ident] = failing.get(ident, []) + [result["patient"]]
    for ident, row in rows.items():
        assert row["failing"] == len(failing.get(ident, ())), ident
        assert row["samplePatients"] == sorted(failing.get(ident, ()))[:5], ident


def test_spark_report_is_the_summary_rendered_and_names_the_master(scorecards):
    from neuropathy_kg.report import render_report

    spark = scorecards["spark"]
    assert spark["report"] == render_report(spark["summary"])
    assert "on Apache Spark (master <code>local[2]</code>)" in spark["report"]
    assert "Apache Spark" not in scorecards["embedded"]["report"]


def test_lines_are_keyed_by_ndjson_route():
    from neuropathy_kg.spark import _routed

    sources = ("E/x.ndjson",)
    cases = {
        b'{"resourceType":"Patient","id":"p1","identifier":[{"system":"s","value":"v"}]}':
            [("identifier", "s|v", "p1"), ("owned", "p1", None, None, 0)],
        b'{"resourceType":"Observation","subject":{"reference":"Patient/p2/_history/4"}}': [("owned", "p2", None, None, 0)],
        b'{"resourceType":"Observation","subject":{"reference":"https://x/fhir/Patient/p3"}}': [("owned", "p3", None, None, 0)],
        b'{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p4"}}': [("owned", "p4", None, None, 0)],
        b'{"resourceType":"MedicationRequest","subject":{"reference":"Patient/p5"},"medicationReference":{"reference":"Medication/m1"}}':
            [("owned", "p5", None, "Medication/m1", 0)],
        b'{"resourceType":"Condition","subject":{"identifier":{"system":"s","value":"v"}}}': [("pending", "s|v", None)],
        MEDICATION: [("medication", "Medication/m1", None)],
        b'{"resourceType":"Practitioner","id":"d1"}': [],
    }
    for line, wanted in cases.items():
        assert [tuple(None if isinstance(part, tuple) else part for part in record) for record in _routed((0, 7, line), sources)] == wanted, line
    assert _routed((0, 7, BAD_LINE), sources)[0][:3] == ("error", 0, 7)
    assert "E/x.ndjson:7: " in _routed((0, 7, BAD_LINE), sources)[0][3]


def _identity_export(root: Path) -> Path:
    """8 synthetic patients whose references use every spelling: p0 versioned, p1 an absolute URL, p2 only
    by identifier (its MedicationRequest by medicationReference to a Medication given in three versions:
    the latest, neither the first nor the last, counts), p3 Patient/ID (with an order of a Medication given
    twice with different content and no version: none counts, reported); p0 and p1 each have an
    Observation/1; p4 and p5 share an identifier; and lines whose patient cannot be resolved (a urn:uuid, an
    identifier of no Patient, one of two Patients, no subject at all), a Practitioner and an unreferenced
    Medication."""
    folder = generate(8, root / "identity", seed=19)
    mrn = "urn:example:mrn"
    spelled = {"Patient/p0000000": {"reference": "Patient/p0000000/_history/2"},
               "Patient/p0000001": {"reference": "https://example.org/fhir/Patient/p0000001"},
               "Patient/p0000002": {"identifier": {"system": mrn, "value": "M2"}}}
    renamed: set[str] = set()
    for path in folder.glob("*.ndjson"):
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            resource = json.loads(line)
            if resource["resourceType"] == "Patient":
                value = {"p0000002": "M2", "p0000004": "D", "p0000005": "D"}.get(resource["id"])
                if value:
                    resource["identifier"] = [{"system": mrn, "value": value}]
            for field in ("subject", "patient"):
                reference = resource.get(field, {}).get("reference")
                if reference in spelled:
                    resource[field] = spelled[reference]
                    if resource["resourceType"] == "Observation" and reference not in renamed and reference != "Patient/p0000002":
                        resource["id"] = "1"
                        renamed.add(reference)
            out.append(json.dumps(resource))
        path.write_text("\n".join(out) + "\n", encoding="utf-8")
    assert len(renamed) == 2
    extra = [
        {"resourceType": "MedicationRequest", "id": "mr-m1", "status": "active", "intent": "order",
         "subject": {"identifier": {"system": mrn, "value": "M2"}}, "authoredOn": "2026-10-01",
         "medicationReference": {"reference": "Medication/m1"}},
        {"resourceType": "Observation", "id": "u1", "status": "final", "subject": {"reference": "urn:uuid:7d2f1c1e-0000-4000-8000-000000000001"}},
        {"resourceType": "Observation", "id": "u2", "status": "final", "subject": {"identifier": {"system": mrn, "value": "NOBODY"}}},
        {"resourceType": "Observation", "id": "u3", "status": "final", "subject": {"identifier": {"system": mrn, "value": "D"}}},
        {"resourceType": "Condition", "id": "u4"},
        {"resourceType": "MedicationRequest", "id": "mr-m2", "status": "active", "intent": "order",
         "subject": {"reference": "Patient/p0000003"}, "authoredOn": "2026-10-01", "medicationReference": {"reference": "Medication/m2"}},
        {"resourceType": "Practitioner", "id": "dr1"},
    ]
    medications = [{"resourceType": "Medication", "id": "m1", "meta": {"versionId": "1"}, "code": {"text": "metformin 500 MG Oral Tablet"}},
                   {"resourceType": "Medication", "id": "m1", "meta": {"versionId": "3"}, "code": {"text": "pregabalin 150 MG Oral Capsule"}},
                   {"resourceType": "Medication", "id": "m1", "meta": {"versionId": "2"}, "code": {"text": "metformin 850 MG Oral Tablet"}},
                   {"resourceType": "Medication", "id": "m9", "code": {"text": "gabapentin 300 MG Oral Capsule"}},
                   {"resourceType": "Medication", "id": "m2", "code": {"text": "pregabalin 75 MG Oral Capsule"}},
                   {"resourceType": "Medication", "id": "m2", "code": {"text": "duloxetine 60 MG Oral Capsule"}}]
    (folder / "Other.ndjson").write_text("".join(json.dumps(r) + "\n" for r in extra), encoding="utf-8")
    (folder / "Medication.ndjson").write_text("".join(json.dumps(r) + "\n" for r in medications), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def identity(tmp_path_factory, spark_session) -> dict:
    root = tmp_path_factory.mktemp("identity")
    folder = _identity_export(root)
    embedded_file = root / "recommend.jsonl"
    embedded = _run("recommend", "--as-of", AS_OF, "--jsonl", "--output", str(embedded_file), str(folder))
    spark = _run("recommend", "--as-of", AS_OF, "--spark", "local[2]", "--jsonl", "--output", str(root / "spark"), str(folder))
    return {"folder": folder, "embedded": embedded, "spark": spark, "spark_folder": root / "spark",
            "expected": embedded_file.read_text(encoding="utf-8").splitlines()}


def test_spark_resolves_every_reference_spelling_as_the_embedded_path(identity):
    expected = identity["expected"]
    found = _spark_lines(identity["spark_folder"])
    assert sorted(json.loads(line)["patient"] for line in expected) == [f"p000000{k}" for k in range(8)]
    assert len(found) == len(expected) and set(found) == set(expected)
    by_patient = {json.loads(line)["patient"]: line for line in expected}
    # p0000002's only drug is Medication/m1 in its latest version (3, pregabalin; the first and the last copy
    # are metformin): it reached the bucket of the patient named only by identifier, once, on both paths
    assert json.loads(by_patient["p0000002"])["facts"]["onFirstLineAgent"] is True


def test_spark_reports_unresolvable_references_with_file_and_line_as_the_embedded_path(identity):
    assert identity["spark"].exit_code == identity["embedded"].exit_code == 2
    folder = identity["folder"]
    problems = _problems(identity["spark"].stderr, folder)
    assert problems == _problems(identity["embedded"].stderr, folder)
    assert [line.split(": ", 2)[1] for line in problems] == ["EXPORT/Medication.ndjson:6", *(f"EXPORT/Other.ndjson:{k}" for k in (2, 3, 4, 5))]
    assert problems[0].endswith("Medication/m2 appears 2 times with different content and no version to tell the latest: none is read")
    for wanted in ("urn:uuid:", "NOBODY names no Patient", "names 2 different Patients", "names no patient"):
        assert any(wanted in line for line in problems), (wanted, problems)


def test_a_file_that_is_not_ndjson_is_reported_and_skipped(export, spark_session, tmp_path):
    bundle = tmp_path / "bundle.json"
    bundle.write_text('{"resourceType": "Bundle", "type": "collection", "entry": []}')
    result = _run("recommend", "--as-of", AS_OF, "--spark", "local[1]", "--jsonl", "--output", str(tmp_path / "out"),
                  str(bundle), str(export["clean-gz"] / "Patient.ndjson.gz"))
    assert result.exit_code == 2
    assert f"neuropathy-kg: {bundle}: --spark reads FHIR Bulk NDJSON only" in result.stderr
    assert len(_spark_lines(tmp_path / "out")) == 300  # the others still run
