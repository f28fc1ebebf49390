"""The data-quality scorecard (validate --summary / --report / --baseline / --thresholds, issue 18): its
counts are an aggregation of the per-patient output, whatever --jobs; every catalogue check is placed;
thresholds and baselines change what they should; the report is self-contained, escapes patient data and
renders in headless Chromium."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict

import pytest
import rdflib
from hypothesis import given, settings, strategies as st

from conftest import ROOT
from neuropathy_kg import NKG, guideline, scorecard
from neuropathy_kg.report import render_report
from neuropathy_kg.scorecard import SAMPLE_SIZE, Digest, Tally

sys.path.insert(0, str(ROOT / "bench"))
from synthetic import generate  # noqa: E402

AS_OF = "2026-11-24"
PATIENTS = 400


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuropathy_kg.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A generated population with one unreadable NDJSON line (the run reports it and goes on)."""
    folder = generate(PATIENTS, tmp_path_factory.mktemp("scorecard") / "export", seed=5)
    with open(folder / "Observation.ndjson", "a") as handle:
        handle.write('{"resourceType": "Observation", broken\n')
    return folder


@pytest.fixture(scope="module")
def runs(export, tmp_path_factory):
    """validate --jsonl --summary with --jobs 1 and 2, and plain validate --jsonl."""
    out = tmp_path_factory.mktemp("runs")
    done = {}
    for jobs in ("1", "2"):
        lines, summary = out / f"jobs{jobs}.jsonl", out / f"jobs{jobs}.summary.json"
        result = _cli("validate", "--as-of", AS_OF, "--jsonl", "--output", str(lines), "--summary", str(summary),
                      "--jobs", jobs, str(export))
        assert result.returncode == 2, result.stderr  # the unreadable line
        done[jobs] = (lines.read_text(), summary.read_text())
    plain = out / "plain.jsonl"
    assert _cli("validate", "--as-of", AS_OF, "--jsonl", "--output", str(plain), "--jobs", "1", str(export)).returncode == 2
    done["plain"] = plain.read_text()
    return done


def _rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_summary_counts_equal_an_aggregation_of_the_per_patient_output(runs):
    lines, text = runs["1"]
    rows, summary = _rows(lines), json.loads(text)
    assert summary["patients"] == len(rows) == PATIENTS
    assert summary["conformingPatients"] == sum(r["conforms"] for r in rows)
    assert summary["failedInputs"] == summary["provenance"]["failedInputs"] == 1
    assert summary["failedPatients"] == 0
    failing, findings, failers = Counter(), Counter(), defaultdict(list)
    for row in rows:
        ids = Counter(f["id"] for f in row["findings"])
        findings.update(ids)
        failing.update(set(ids))
        for ident in ids:
            failers[ident].append(row["patient"])
    by_id = {c["id"]: c for c in summary["checks"]}
    assert set(failing) <= set(by_id), "a finding id the scorecard does not list"
    for ident, check in by_id.items():
        assert check["failing"] == failing[ident], ident
        assert check["findings"] == findings[ident], ident
        assert check["samplePatients"] == sorted(failers[ident])[:SAMPLE_SIZE], ident
        for pid in check["samplePatients"]:
            mine = next(r for r in rows if r["patient"] == pid)
            assert check["sampleFindings"][pid] == [f for f in mine["findings"] if f["id"] == ident]
        if check["applicable"]:
            assert check["passRate"] == round(1 - check["failing"] / check["applicable"], 6)
            share = check["failing"] / check["applicable"]
            assert check["status"] == ("fail" if share > check["threshold"] else "pass")
        else:
            assert check["status"] == "not-applicable" and check["passRate"] is None
    assert sum(1 for c in by_id.values() if c["failing"]) >= 20, "the population exercises most checks"


def test_summary_is_byte_identical_across_jobs_and_leaves_the_per_patient_output_as_it_was(runs):
    assert runs["1"][1] == runs["2"][1]
    assert runs["1"][0] == runs["2"][0] == runs["plain"]


def test_denominators_are_the_populations_and_pitfalls_count_eligible_patients(runs, export, tmp_path):
    summary = json.loads(runs["1"][1])
    populations = summary["distributions"]["populations"]
    assert populations["population-every-patient"] == PATIENTS
    recommended = tmp_path / "recommend.jsonl"
    _cli("recommend", "--as-of", AS_OF, "--jsonl", "--output", str(recommended), "--jobs", "1", str(export))
    rows = _rows(recommended.read_text())
    eligible = sum(r["inScope"] and not r["facts"]["deceased"] for r in rows)
    relapsed = sum(r["inScope"] and not r["facts"]["deceased"] and r["facts"]["relapse"] for r in rows)
    assert 0 < eligible < PATIENTS
    assert populations["population-eligible"] == eligible
    assert populations["population-eligible-in-relapse"] == relapsed
    for check in summary["checks"]:
        # No patient fails a check outside its population on this population: the definitions hold.
        assert check["applicable"] == populations[check["population"]], check["id"]
        if check["category"] == "clinical":
            assert check["population"] == "population-eligible"
    # Distributions are recommend's, counted per patient.
    actions = Counter(a["id"] for r in rows for a in {x["id"]: x for x in r["actions"]}.values())
    assert {k: v for k, v in summary["distributions"]["actions"].items() if v} == dict(actions)
    assert summary["distributions"]["phenotypes"] == dict(Counter(r["phenotype"] or "not recorded" for r in rows))
    assert summary["distributions"]["renalBands"] == dict(Counter(r["facts"]["renalBand"] or "unknown" for r in rows))


def test_every_catalogue_pitfall_and_data_check_is_placed():
    ids = {e.id for e in guideline.catalogue().values() if e.kind in ("Pitfall", "DataFinding")}
    placed = {c.id: c for c in scorecard.checks()}
    assert set(placed) == ids
    for check in placed.values():
        assert check.category == ("clinical" if check.kind == "Pitfall" else check.category)
        assert check.category in scorecard.CATEGORY_ORDER
        assert check.kind == "Pitfall" or check.category != "clinical"
        assert 0 <= check.threshold <= 1 and check.population in scorecard.populations()
    # Each data finding names its Kahn category itself (none left to a default).
    g = guideline.ontology()
    for entry in guideline.catalogue().values():
        if entry.kind == "DataFinding":
            assert g.value(rdflib.URIRef(entry.iri), NKG.dataQualityCategory) is not None, entry.id


def test_a_data_check_without_a_category_is_an_error(monkeypatch):
    g = rdflib.Graph()
    g += guideline.ontology()
    g.remove((NKG["data-missing-sex"], NKG.dataQualityCategory, None))
    monkeypatch.setattr(guideline, "ontology", lambda: g)
    scorecard.checks.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="data-missing-sex: no nkg:dataQualityCategory"):
            scorecard.checks()
    finally:
        monkeypatch.undo()
        scorecard.checks.cache_clear()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The example patients' summary (document output, both engines)."""
    out = tmp_path_factory.mktemp("small")
    summaries = {}
    for engine in ("oxigraph", "rdflib"):
        path = out / f"{engine}.json"
        document = _cli("validate", "--as-of", AS_OF, "--format", "json", "--engine", engine, "--summary", str(path),
                        str(ROOT / "examples"))
        assert document.returncode == 1, document.stderr
        summaries[engine] = (path, json.loads(path.read_text()), document.stdout)
    return summaries


def test_both_engines_give_the_same_summary_and_the_document_is_unchanged(small):
    (_p, oxigraph, with_summary), (_q, rdflib_summary, _out) = small["oxigraph"], small["rdflib"]
    oxigraph, rdflib_summary = copy.deepcopy(oxigraph), copy.deepcopy(rdflib_summary)
    assert rdflib_summary["provenance"].pop("engine") == "rdflib"
    assert oxigraph["provenance"].pop("engine") == "oxigraph"
    assert oxigraph == rdflib_summary
    plain = _cli("validate", "--as-of", AS_OF, "--format", "json", str(ROOT / "examples"))
    assert with_summary == plain.stdout
    assert oxigraph["patients"] == 8  # examples/: 7 files, one with two patients


def test_thresholds_file_overrides_the_ontology_defaults(small, tmp_path):
    path, summary, _out = small["oxigraph"]
    failing = next(c for c in summary["checks"] if c["status"] == "fail")
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({failing["id"]: 1}))
    again = tmp_path / "again.json"
    _cli("validate", "--as-of", AS_OF, "--summary", str(again), "--thresholds", str(thresholds), str(ROOT / "examples"))
    document = json.loads(again.read_text())
    assert document["provenance"]["thresholdsFile"] == str(thresholds)
    changed = {c["id"]: c for c in document["checks"]}
    assert changed[failing["id"]]["threshold"] == 1.0 and changed[failing["id"]]["status"] == "pass"
    others = [c for c in summary["checks"] if c["id"] != failing["id"]]
    assert all(changed[c["id"]] == c for c in others)


@pytest.mark.parametrize("content, message", [
    ('{"no-such-check": 0.1}', "'no-such-check' is no data check or pitfall id"),
    ('{"data-missing-sex": 1.5}', "must be a number from 0 to 1"),
    ('{"data-missing-sex": true}', "must be a number from 0 to 1"),
    ("[0.1]", "must be a JSON object"),
    ("{not json", "is not JSON"),
])
def test_a_bad_thresholds_file_is_a_one_line_error(tmp_path, content, message):
    thresholds = tmp_path / "t.json"
    thresholds.write_text(content)
    result = _cli("validate", "--summary", str(tmp_path / "s.json"), "--thresholds", str(thresholds), str(ROOT / "examples"))
    assert result.returncode == 2 and message in result.stderr and str(thresholds) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "s.json").exists()


def test_baseline_shows_each_checks_change(small, tmp_path):
    path, summary, _out = small["oxigraph"]
    failing = next(c for c in summary["checks"] if c["status"] == "fail" and c["passRate"] is not None)
    passing = next(c for c in summary["checks"] if c["status"] == "pass" and c["passRate"] is not None)
    dropped = next(c["id"] for c in summary["checks"] if c["status"] != "fail" and c["id"] != passing["id"])
    before = copy.deepcopy(summary)
    for row in before["checks"]:
        if row["id"] == failing["id"]:  # it passed last month: a new failure
            row.update(status="pass", failing=0, passRate=1.0)
        if row["id"] == passing["id"]:  # it failed last month: fixed
            row.update(status="fail", failing=row["failing"] + 3, passRate=row["passRate"] - 0.25)
    before["checks"] = [r for r in before["checks"] if r["id"] != dropped]
    before["checks"].append({"id": "retired-check", "failing": 1, "passRate": 0.5, "status": "fail"})
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(before))
    now, report = tmp_path / "now.json", tmp_path / "now.html"
    _cli("validate", "--as-of", AS_OF, "--summary", str(now), "--report", str(report), "--baseline", str(baseline),
         str(ROOT / "examples"))
    result = json.loads(now.read_text())
    rows = {c["id"]: c for c in result["checks"]}
    assert rows[failing["id"]]["change"]["status"] == "new-failure"
    assert rows[failing["id"]]["change"]["failingBefore"] == 0
    assert rows[failing["id"]]["change"]["failingDelta"] == failing["failing"]
    assert rows[failing["id"]]["change"]["passRateDelta"] == round(failing["passRate"] - 1.0, 6)
    assert rows[passing["id"]]["change"]["status"] == "fixed"
    assert rows[passing["id"]]["change"]["failingDelta"] == -3
    assert rows[dropped]["change"]["status"] == "new-check"
    others = set(rows) - {failing["id"], passing["id"], dropped}
    assert all(rows[i]["change"]["status"] == "unchanged" and rows[i]["change"]["failingDelta"] == 0 for i in others)
    assert result["baseline"]["newFailures"] == [failing["id"]]
    assert result["baseline"]["fixed"] == [passing["id"]]
    assert result["baseline"]["removedChecks"] == ["retired-check"]
    html = report.read_text()
    assert "new-failure" in html and "fixed" in html and "Failing before" in html


@pytest.mark.parametrize("content", ["{not json", "[]", '{"scorecard": 1, "checks": [{"id": "x"}]}', '{"checks": []}'])
def test_a_malformed_baseline_is_a_one_line_error(tmp_path, content):
    baseline = tmp_path / "b.json"
    baseline.write_text(content)
    result = _cli("validate", "--summary", str(tmp_path / "s.json"), "--baseline", str(baseline), str(ROOT / "examples"))
    assert result.returncode == 2 and str(baseline) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_summary_is_never_written_onto_an_input(small, tmp_path):
    path, _summary, _out = small["oxigraph"]
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(path.read_bytes())
    result = _cli("validate", "--summary", str(baseline), "--baseline", str(baseline), str(ROOT / "examples"))
    assert result.returncode == 2 and "nothing is ever written to an input file" in result.stderr
    assert baseline.read_bytes() == path.read_bytes()


def test_scorecard_options_need_a_summary_or_report():
    result = _cli("validate", "--thresholds", "x.json", str(ROOT / "examples"))
    assert result.returncode == 2 and "need --summary" in result.stderr
    result = _cli("validate", "--summary", "x.json", "--shacl", "pyshacl", str(ROOT / "examples"))
    assert result.returncode == 2 and "--shacl compiled" in result.stderr


# ---------------------------------------------------------------- aggregation is order-free (--jobs)

def _digest(pid: int, fails: list[int]) -> Digest:
    ids = [c.id for c in scorecard.checks()]
    counts = tuple(sorted((ids[i], 1 + i % 2) for i in set(fails)))
    samples = tuple((ident, ({"id": ident, "patient": f"p{pid:03d}"},)) for ident, _n in counts)
    return Digest(patient=f"p{pid:03d}", conforms=not fails, phenotype=None, renal_band="30-59", actions=("repeat-ivig",),
                  populations=("population-every-patient", "population-eligible"), counts=counts, samples=samples)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), max_size=3), min_size=1, max_size=30), st.randoms(use_true_random=False),
       st.integers(1, 7))
def test_the_tally_is_the_same_whatever_the_chunks_and_their_order(failures, random, size):
    digests = [_digest(i, f) for i, f in enumerate(failures)]
    whole = Tally()
    whole.add([(None, d) for d in digests])
    shuffled = digests[:]
    random.shuffle(shuffled)
    parts = Tally()
    for start in range(0, len(shuffled), size):
        parts.add([(None, d) for d in shuffled[start:start + size]])
    provenance = {"failedPatients": 0, "failedInputs": 0}
    assert whole.summary(provenance) == parts.summary(provenance)
    summary = whole.summary(provenance)
    for check in summary["checks"]:
        assert len(check["samplePatients"]) <= SAMPLE_SIZE
        assert check["applicable"] >= check["failing"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), max_size=3), min_size=1, max_size=30), st.randoms(use_true_random=False),
       st.integers(1, 7))
def test_merged_tallies_of_parts_are_the_tally_of_the_whole(failures, random, size):
    """What Spark's treeAggregate does (spark.py): tallies of parts of the run, merged in any grouping
    and order, give the summary of one tally of every digest."""
    digests = [_digest(i, f) for i, f in enumerate(failures)]
    whole = Tally()
    whole.add([(None, d) for d in digests])
    random.shuffle(digests)
    parts = []
    for start in range(0, len(digests), size):
        part = Tally()
        part.add([(None, d) for d in digests[start:start + size]])
        parts.append(part)
    parts.append(Tally())  # an empty part (a task whose bucket had no patient) changes nothing
    while len(parts) > 1:  # merged pairwise in a random tree, as treeAggregate's levels do
        left = parts.pop(random.randrange(len(parts)))
        right = parts.pop(random.randrange(len(parts)))
        before = right.summary({})
        parts.append(left.merge(right))
        assert right.summary({}) == before  # the other side is left as it was
    provenance = {"failedPatients": 0, "failedInputs": 0}
    assert parts[0].summary(provenance) == whole.summary(provenance)


# ---------------------------------------------------------------- the report

NETWORK = re.compile(r"""(?:\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//)|url\(\s*["']?\s*(?:https?:)?//|@import""",
                     re.I)


def _hostile(summary: dict) -> dict:
    hostile = copy.deepcopy(summary)
    check = next(c for c in hostile["checks"] if c["samplePatients"])
    pid = '"><img src=x onerror=alert(1)>'
    check["samplePatients"] = [pid]
    check["sampleFindings"] = {pid: [{"id": check["id"], "severity": "violation",
                                      "message": "<script>alert('x')</script> http://evil.example/x.js",
                                      "value": "</script><script>alert(2)</script>"}]}
    hostile["provenance"]["inputs"] = ["<b>export</b>.ndjson"]
    return hostile


def test_report_is_self_contained_reproducible_and_escapes_patient_data(small):
    _path, summary, _out = small["oxigraph"]
    html = render_report(_hostile(summary))
    assert html == render_report(_hostile(summary))
    assert not NETWORK.search(html), NETWORK.search(html)
    assert "<img src=x" not in html and "<script>alert" not in html and "<b>export</b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert len(re.findall(r"<svg\b", html)) == 4 + 4  # a chart per category and per distribution
    assert all(f'data-id="{c["id"]}"' in html for c in summary["checks"])


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(browser: str, profile, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(profile)})


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(small, tmp_path):
    from PIL import Image, ImageStat

    _path, summary, _out = small["oxigraph"]
    page = tmp_path / "report.html"
    page.write_text(render_report(_hostile(summary)), encoding="utf-8")
    shot = tmp_path / "shot.png"
    result = _headless(_chromium(), tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert shot.exists(), result.stderr
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 2000)
    assert ImageStat.Stat(image).stddev[0] > 20, "the screenshot is blank"
    dom = _headless(_chromium(), tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    total = len(summary["checks"])
    assert f"{total} of {total} checks shown" in dom  # written by the page's script: it ran
    assert 'data-ready="true"' in dom
    assert dom.count('<tr class="check"') == total
    assert "<img" not in dom and "&lt;img src=x" in dom  # the hostile id is text, not an element


def test_chart_labels_from_data_are_escaped_and_charts_reproducible():
    from neuropathy_kg.report import distribution_chart

    hostile = {'<script>alert(1)</script> $x$ & "q"': 3, "b": 1}
    svg = distribution_chart(hostile, "patients")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "$x$" in svg  # no mathtext either
    assert svg == distribution_chart(hostile, "patients") and svg.startswith("<svg") and "<metadata" not in svg


def test_status_at_the_threshold_and_with_nobody_applicable():
    empty = Tally().summary({"failedPatients": 0, "failedInputs": 0})
    assert all(c["status"] == "not-applicable" and c["passRate"] is None and c["applicable"] == 0 for c in empty["checks"])

    def run(failing: int) -> dict:
        tally = Tally()
        digests = [Digest(patient=f"p{i:02d}", conforms=True, phenotype=None, renal_band=None, actions=(),
                          populations=("population-every-patient",),
                          counts=(("data-missing-sex", 1),) if i < failing else (), samples=()) for i in range(20)]
        tally.add([(None, d) for d in digests])
        return next(c for c in tally.summary({})["checks"] if c["id"] == "data-missing-sex")

    assert run(1)["threshold"] == 0.05
    assert run(1)["status"] == "pass" and run(1)["passRate"] == 0.95  # 1/20 = the largest acceptable share
    assert run(2)["status"] == "fail" and run(2)["passRate"] == 0.9
    eligible_only = next(c for c in Tally().summary({})["checks"] if c["id"] == "opioid-as-first-line")
    assert eligible_only["population"] == "population-eligible"
