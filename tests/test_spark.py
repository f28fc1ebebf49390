"""`--spark MASTER` (spark.py) gives the embedded path's results: the same JSON line for every patient, the
same problems reported, the same exit codes, on a gzip export split over several files (issue 19).

Skipped where pyspark or Java 17 is missing. Every Spark run here shares one JVM (the CLI is invoked in
this process), which keeps the module near a minute on a loaded 2-core machine."""

from __future__ import annotations

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
from neuropathy_kg import batch
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
def export(tmp_path_factory) -> dict[str, Path]:
    """300 synthetic patients as plain NDJSON (for the embedded path) and the same lines as gzip files
    (for Spark), Observation split over two files so that a patient's lines are in several files; plus a
    line that is not JSON, a blank line and a Medication naming no patient (shared with every bucket)."""
    root = tmp_path_factory.mktemp("spark")
    plain = generate(300, root / "plain", seed=300)
    observations = (plain / "Observation.ndjson").read_bytes().splitlines(keepends=True)
    half = len(observations) // 2
    (plain / "Observation.ndjson").write_bytes(b"".join(observations[:half]))
    (plain / "Observation2.ndjson").write_bytes(b"".join(observations[half:]) + b"\n" + BAD_LINE + b"\n")
    (plain / "Medication.ndjson").write_bytes(MEDICATION + b"\n")
    packed = root / "gz"
    packed.mkdir()
    for path in plain.iterdir():
        (packed / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
    return {"plain": plain, "gz": packed, "root": root}


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
def test_spark_writes_the_embedded_jsonl_line_of_every_patient(export, command):
    embedded_file = export["root"] / f"{command}.jsonl"
    embedded = _run(command, "--as-of", AS_OF, "--jsonl", "--output", str(embedded_file), str(export["plain"]))
    folder = export["root"] / f"{command}-spark"
    spark = _run(command, "--as-of", AS_OF, "--spark", "local[2]", "--jsonl", "--output", str(folder), "--parquet",
                 str(export["gz"]))
    expected = embedded_file.read_text(encoding="utf-8").splitlines()
    found = _spark_lines(folder)
    assert len(expected) == 300
    assert len(found) == len(expected)  # no patient twice (a set would hide it)
    assert set(found) == set(expected)
    assert spark.exit_code == embedded.exit_code == 2  # the bad line
    problems = _problems(spark.stderr, export["gz"])
    assert problems == _problems(embedded.stderr, export["plain"])
    assert any("Observation2.ndjson:" in p and "not valid JSON" in p for p in problems), problems
    assert (folder / "_errors").is_dir() and any("not valid JSON" in line for part in (folder / "_errors").glob("part-*")
                                                 for line in part.read_text().splitlines())
    _check_table(folder, command, [json.loads(line) for line in expected])


def _check_table(folder: Path, command: str, results: list[dict]) -> None:
    """The Parquet table holds one row per action (or finding) of the JSON lines, with the same values."""
    from pyspark.sql import SparkSession

    table = "actions" if command == "recommend" else "findings"
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        rows = [row.asDict() for row in spark.read.parquet(str(folder / "parquet" / table)).collect()]
    finally:
        spark.stop()
    wanted = sorted((r["patient"], item["id"], json.dumps(item.get("citations"))) for r in results for item in r[table])
    assert len(wanted) > 100
    assert sorted((row["patient"], row["id"], json.dumps(row["citations"])) for row in rows) == wanted
    if table == "actions":
        doses = {(r["patient"], a["id"]): a["dose"] for r in results for a in r["actions"] if "dose" in a}
        assert doses
        for row in rows:
            dose = doses.get((row["patient"], row["id"]), {})
            assert row["drug"] == dose.get("drug")
            for name in DOSE_FIELDS:
                assert row[name] == (float(dose[name]) if name in dose else None), (row, dose)


def test_validate_exit_code_is_one_when_a_patient_has_a_violation(export, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    for path in export["gz"].iterdir():
        if not path.name.startswith("Observation2"):
            shutil.copy(path, clean / path.name)
    result = _run("validate", "--as-of", AS_OF, "--spark", "local[2]", "--jsonl", "--output", str(tmp_path / "out"), str(clean))
    lines = [json.loads(line) for line in _spark_lines(tmp_path / "out")]
    assert not all(r["conforms"] for r in lines)
    assert result.exit_code == 1, result.stderr
    assert not (tmp_path / "out" / "_errors").exists()


def test_spark_refuses_what_it_cannot_do_in_one_line(export, tmp_path):
    for args, message in [
        (["--spark", "local[1]", str(export["gz"])], "--jsonl --output DIR"),
        (["--spark", "local[1]", "--jsonl", str(export["gz"])], "--jsonl --output DIR"),
        (["--spark", "local[1]", "--jsonl", "--jobs", "2", "--output", str(tmp_path / "o"), str(export["gz"])], "--jobs"),
        (["--parquet", str(export["gz"])], "--parquet needs --spark"),
    ]:
        result = _run("recommend", *args)
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    existing = tmp_path / "existing"
    existing.mkdir()
    result = _run("recommend", "--spark", "local[1]", "--jsonl", "--output", str(existing / "x"), str(tmp_path / "missing"))
    assert result.exit_code == 2 and "no such file or folder" in result.stderr and not (existing / "x").exists()
    (existing / "x").write_text("kept")  # Spark writes a new folder, never over a file or into a folder
    result = _run("recommend", "--spark", "local[1]", "--jsonl", "--output", str(existing / "x"), str(export["gz"]))
    assert result.exit_code == 2 and "already exists" in result.stderr and (existing / "x").read_text() == "kept"


def test_lines_are_keyed_as_the_embedded_spooler_keys_them():
    from neuropathy_kg.spark import _line_key

    for line in [b'{"resourceType":"Patient","id":"p1"}', b'{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}',
                 b'{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p3"}}', MEDICATION, BAD_LINE]:
        assert _line_key(line) == batch._patient_key(line)
