"""Remote SPARQL 1.1 stores: `load` then `query --endpoint` against a real Oxigraph server started here
on 127.0.0.1 give the same rows as the local run; endpoint faults end in one line, exit 2, with bounded
retries; credentials come from the environment."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT, sparql_json_rows
from neuropathy_kg import endpoint, guideline
from neuropathy_kg.cli import main
from neuropathy_kg.load import read_patients
from neuropathy_kg.engine import python_value
from neuropathy_kg.pipeline import derive

import datetime as dt

OXIGRAPH = shutil.which("oxigraph") or str(Path(sys.executable).parent / "oxigraph")
EXAMPLES = ROOT / "examples"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def oxigraph_server():
    if not Path(OXIGRAPH).exists():
        pytest.skip("the oxigraph server (PyPI oxigraph) is not installed")
    port = free_port()
    process = subprocess.Popen([OXIGRAPH, "serve", "--bind", f"127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/query?query=ASK%7B%7D", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("the oxigraph server did not start")
    yield base
    process.terminate()
    process.wait(timeout=10)


def rows(result_rows) -> list[tuple]:
    return sorted(tuple(sorted((k, str(python_value(v))) for k, v in row.items())) for row in result_rows)


def test_load_then_query_the_endpoint_equals_local(oxigraph_server):
    result = CliRunner().invoke(main, ["load", "--store", f"{oxigraph_server}/store", "--as-of", "2026-11-24", str(EXAMPLES)])
    assert result.exit_code == 0, result.stderr
    patients, _ = read_patients([str(EXAMPLES)])
    local = derive(patients, dt.date(2026, 11, 24))
    names = [n for n, _q in guideline.action_queries()] + ["patient-facts", "missing-data", "patient-categories"]
    compared = 0
    for name in names:
        text = guideline.named_queries()[name].read_text()
        remote = endpoint.select(f"{oxigraph_server}/query", text)
        assert rows(remote) == rows(local.select(text)), name
        compared += len(remote)
    assert compared >= 100  # rows of the example patients (100 on 2026-12-02): the comparison is not vacuous


def test_query_command_against_the_endpoint(oxigraph_server):
    runner = CliRunner()
    runner.invoke(main, ["load", "--store", f"{oxigraph_server}/store", "--as-of", "2026-11-24", str(EXAMPLES / "03-renal-impairment.ttl")])
    result = runner.invoke(main, ["query", "repeat-ivig", "--endpoint", f"{oxigraph_server}/query", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert any(r["patient"].endswith("carmen/patient") and float(r["dailyAmount"]) == 30 for r in sparql_json_rows(result.stdout))
    both = runner.invoke(main, ["query", "repeat-ivig", str(EXAMPLES), "--endpoint", f"{oxigraph_server}/query"])
    assert both.exit_code == 2 and "not both" in both.stderr


class FaultyHandler(http.server.BaseHTTPRequestHandler):
    mode = "500"
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._answer()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self):
        FaultyHandler.seen.append(dict(self.headers))
        if self.mode == "slow":
            time.sleep(2.5)
        status = {"500": 500, "garbage": 200, "slow": 200, "400": 400}[self.mode]
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/sparql-results+json")
            self.end_headers()
            self.wfile.write(b"{not json" if self.mode == "garbage" else b'{"head": {}}')
        except OSError:
            pass  # the client gave up (the timeout case)

    def log_message(self, *args):
        pass


@pytest.fixture
def faulty_server(monkeypatch):
    monkeypatch.setattr(endpoint, "BACKOFF_SECONDS", 0.01)
    FaultyHandler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FaultyHandler)
    server.handle_error = lambda *args: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sparql"
    server.shutdown()


def one_line_exit_2(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(("mode", "needle", "attempts"), [
    ("500", "HTTP 500", endpoint.ATTEMPTS),
    ("garbage", "malformed SPARQL results", endpoint.ATTEMPTS),
    ("slow", "timed out", endpoint.ATTEMPTS),
    ("400", "HTTP 400", 1),
])
def test_endpoint_faults(faulty_server, mode, needle, attempts):
    FaultyHandler.mode = mode
    result = CliRunner().invoke(main, ["query", "patient-facts", "--endpoint", faulty_server, "--timeout", "1"])
    one_line_exit_2(result, faulty_server, needle)
    assert len(FaultyHandler.seen) == attempts, "bounded retries, none for a client error"


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/query"
    original = endpoint.BACKOFF_SECONDS
    endpoint.BACKOFF_SECONDS = 0.01
    try:
        result = CliRunner().invoke(main, ["query", "patient-facts", "--endpoint", url])
    finally:
        endpoint.BACKOFF_SECONDS = original
    one_line_exit_2(result, url, "after 3 attempts")


def test_credentials_come_from_the_environment(faulty_server, monkeypatch):
    FaultyHandler.mode = "400"
    monkeypatch.setenv("NEUROPATHY_KG_ENDPOINT_TOKEN", "s3cret")
    CliRunner().invoke(main, ["query", "patient-facts", "--endpoint", faulty_server])
    assert FaultyHandler.seen[0].get("Authorization") == "Bearer s3cret"


def test_interactions_over_the_endpoint_equal_local(oxigraph_server):
    """Issue 7: load a second guideline graph beside this one; the interaction queries run unchanged on the
    store and find what `neuropathy-kg interactions` finds locally."""
    from neuropathy_kg.linking import _resolved, read_guideline_graph

    other = ROOT / "tests" / "guidelines" / "chronic-pain-fragment.ttl"
    result = CliRunner().invoke(main, ["load", "--store", f"{oxigraph_server}/store", "--guideline-graph", str(other)])
    assert result.exit_code == 0, result.stderr
    local, _graph = _resolved([read_guideline_graph(str(other))], "oxigraph")

    def cited(result_rows):  # GROUP_CONCAT's order is not defined: compare the citation lists as sets
        return sorted(tuple(sorted((k, tuple(sorted(str(v).split(", "))) if k.endswith("Citations") else str(v))
                                   for k, v in row.items())) for row in result_rows)

    found = 0
    for name, text in guideline.interaction_queries()[1]:
        remote = endpoint.select(f"{oxigraph_server}/query", text)
        assert cited(remote) == cited(local.select(text)), name
        assert all(row["oursCitations"] and row["theirsCitations"] for row in remote), "both sides cited in the store"
        found += len(remote)
    assert found == 22  # 2 contradictions, 4 repetitions, 8 alternatives, 8 drug-drug interactions
    contradictions = CliRunner().invoke(main, ["query", "contradictions", "--endpoint", f"{oxigraph_server}/query", "--format", "json"])
    assert {r["drug"].rsplit("/", 1)[-1] for r in sparql_json_rows(contradictions.stdout)} == {"tramadol", "duloxetine"}


def test_load_replaces_so_a_store_holds_one_assessment_date(oxigraph_server):
    """Issue 16: two loads at different dates used to leave both dates' facts (patient-facts: 11 rows for
    8 patients). `load` replaces its graph; --append adds at the same date only; a named graph is
    queried with --graph."""
    store, query_url = f"{oxigraph_server}/store", f"{oxigraph_server}/query"
    runner = CliRunner()

    def facts(*extra: str) -> list[dict]:
        result = runner.invoke(main, ["query", "patient-facts", "--endpoint", query_url, "--format", "json", *extra])
        assert result.exit_code == 0, result.stderr
        return sparql_json_rows(result.stdout)

    def dates() -> set[str]:
        return endpoint.held_assessment_dates(query_url, None)

    for as_of in ("2026-11-24", "2026-12-24"):
        result = runner.invoke(main, ["load", "--store", store, "--as-of", as_of, str(EXAMPLES)])
        assert result.exit_code == 0, result.stderr
        rows = facts()
        assert len(rows) == 8 and len({r["patient"] for r in rows}) == 8, as_of
        assert dates() == {as_of}
    # --append at the same date adds (the same triples: still 8 rows); at another date it is refused.
    same = runner.invoke(main, ["load", "--append", "--endpoint", query_url, "--store", store, "--as-of", "2026-12-24",
                                str(EXAMPLES / "03-renal-impairment.ttl")])
    assert same.exit_code == 0, same.stderr
    assert len(facts()) == 8
    other = runner.invoke(main, ["load", "--append", "--endpoint", query_url, "--store", store, "--as-of", "2026-11-24",
                                 str(EXAMPLES / "03-renal-impairment.ttl")])
    assert other.exit_code == 2 and "holds the assessment of 2026-12-24" in other.stderr
    assert dates() == {"2026-12-24"}
    assert runner.invoke(main, ["load", "--append", "--store", store, str(EXAMPLES)]).exit_code == 2  # needs --endpoint
    # A named graph: loaded with --graph, queried with --graph; the default graph is left as it was.
    named = runner.invoke(main, ["load", "--store", store, "--graph", "urn:nkg:run:1", "--as-of", "2026-11-24",
                                 str(EXAMPLES / "03-renal-impairment.ttl")])
    assert named.exit_code == 0, named.stderr
    in_graph = facts("--graph", "urn:nkg:run:1")
    assert [r["patient"].rsplit("/", 2)[-2] for r in in_graph] == ["carmen"]
    assert endpoint.held_assessment_dates(query_url, "urn:nkg:run:1") == {"2026-11-24"}
    assert len(facts()) == 8
    ask = runner.invoke(main, ["query", str(ASK), "--endpoint", query_url, "--graph", "urn:nkg:run:1", "--format", "json"])
    assert json.loads(ask.stdout) == {"head": {}, "boolean": True}


ASK = ROOT / "tests" / "ask-patient.rq"


def test_construct_and_ask_over_the_endpoint_equal_local(oxigraph_server, tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["load", "--store", f"{oxigraph_server}/store", "--as-of", "2026-11-24", str(EXAMPLES)]).exit_code == 0
    construct = tmp_path / "ids.rq"
    construct.write_text("PREFIX nkg: <https://w3id.org/neuropathy-kg/>\n"
                         "CONSTRUCT { ?p nkg:patientId ?id } WHERE { ?p a nkg:Patient ; nkg:patientId ?id }")
    for fmt in ("ntriples", "turtle"):
        remote = runner.invoke(main, ["query", str(construct), "--endpoint", f"{oxigraph_server}/query", "--format", fmt])
        local = runner.invoke(main, ["query", str(construct), "--as-of", "2026-11-24", "--format", fmt, str(EXAMPLES)])
        assert remote.exit_code == 0, remote.stderr
        assert remote.stdout == local.stdout and remote.stdout.count("nkg:patientId" if fmt == "turtle" else "patientId") == 8
    ask = runner.invoke(main, ["query", str(ASK), "--endpoint", f"{oxigraph_server}/query", "--format", "text"])
    assert ask.stdout == "true\n"
