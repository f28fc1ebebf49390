"""Issue 14, items 5-7: fault injection. Outputs that are inputs (directly, in an input folder, through a
symlink or a hard link), FIFOs and devices, a full disk (RLIMIT_FSIZE), a worker killed with SIGKILL,
SIGTERM and SIGINT mid-run, and fake HTTP endpoints on 127.0.0.1 that redirect across origins, trickle,
flood, answer an upload with a redirect, or would see secrets printed; SERVICE in local queries. Each
fault ends in one line on standard error (exit 2, or 130/143 for a signal), with nothing written where
it must not be and no spool or temporary file left behind."""

from __future__ import annotations

import http.server
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT, sparql_json_rows
from neuropathy_kg import endpoint, output
from neuropathy_kg.cli import main

sys.path.insert(0, str(ROOT / "bench"))
from synthetic import generate  # noqa: E402

EXAMPLES = ROOT / "examples"
AS_OF = ["--as-of", "2026-11-24"]


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def one_line(result, code: int, *needles: str) -> str:
    """The run ended with ``code`` and exactly one line on standard error, ours (no library warning,
    no traceback), holding every needle."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("neuropathy-kg: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def inputs(tmp_path):
    """A copy of the examples folder, and the bytes of each file in it, to prove nothing was written."""
    folder = tmp_path / "ex"
    shutil.copytree(EXAMPLES, folder)
    return folder, {p.name: p.read_bytes() for p in folder.iterdir()}


def unchanged(folder: Path, before: dict) -> bool:
    return {p.name: p.read_bytes() for p in folder.iterdir()} == before


# ---------------------------------------------------------------- output safety

def test_output_is_a_file_given_as_input(inputs):
    folder, before = inputs
    target = folder / "04-hepatic-disease.ttl"
    one_line(invoke("recommend", *AS_OF, str(target), "--output", str(target)), 2, "is one of the inputs")
    assert unchanged(folder, before)


def test_output_is_a_file_inside_an_input_folder(inputs):
    folder, before = inputs
    one_line(invoke("recommend", *AS_OF, str(folder), "--output", str(folder / "04-hepatic-disease.ttl")), 2,
             "is one of the inputs", "in the input folder")
    one_line(invoke("recommend", *AS_OF, str(folder), "--output", str(folder / "new.json")), 2,
             "lies inside the input folder")
    assert unchanged(folder, before), "nothing overwritten, nothing created"


def test_output_reaches_an_input_through_a_symlink(inputs, tmp_path):
    folder, before = inputs
    link = tmp_path / "link.ttl"
    link.symlink_to(folder / "03-renal-impairment.ttl")
    one_line(invoke("recommend", *AS_OF, str(folder), "--output", str(link)), 2, "is one of the inputs")
    # the other way round: an input folder holding a symlink to a file outside it, given as the output
    outside = tmp_path / "outside.ttl"
    shutil.copy(EXAMPLES / "01-responder-relapse.ttl", outside)
    other = tmp_path / "other"
    other.mkdir()
    (other / "linked.ttl").symlink_to(outside)
    kept = outside.read_bytes()
    one_line(invoke("recommend", *AS_OF, str(other), "--output", str(outside)), 2, "is one of the inputs", "linked.ttl")
    assert outside.read_bytes() == kept and link.is_symlink() and unchanged(folder, before)


def test_output_is_a_hard_link_to_an_input(inputs, tmp_path):
    folder, before = inputs
    hard = tmp_path / "hard.ttl"
    os.link(folder / "02-symmetric-ivig-planned.ttl", hard)
    one_line(invoke("recommend", *AS_OF, str(folder), "--output", str(hard)), 2,
             "is one of the inputs", "02-symmetric-ivig-planned.ttl")
    one_line(invoke("validate", *AS_OF, str(folder / "02-symmetric-ivig-planned.ttl"), "--output", str(hard)), 2,
             "is one of the inputs")
    assert unchanged(folder, before) and hard.stat().st_nlink == 2


def test_output_is_standard_input(tmp_path):
    target = tmp_path / "input.ttl"
    shutil.copy(EXAMPLES / "04-hepatic-disease.ttl", target)
    with open(target, "rb") as stdin:
        done = subprocess.run([sys.executable, "-m", "neuropathy_kg.cli", "recommend", *AS_OF, "-", "--output", str(target)],
                              stdin=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is standard input" in done.stderr, done.stderr
    assert target.read_bytes() == (EXAMPLES / "04-hepatic-disease.ttl").read_bytes()


def test_output_is_a_fifo(tmp_path):
    fifo = tmp_path / "results"
    os.mkfifo(fifo)
    one_line(invoke("recommend", *AS_OF, str(EXAMPLES / "04-hepatic-disease.ttl"), "--output", str(fifo)), 2, "is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["results"]


def test_output_is_a_socket(tmp_path, monkeypatch):
    import socket

    monkeypatch.chdir(tmp_path)  # a relative name: socket paths are limited to 108 bytes
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind("sock")
        one_line(invoke("recommend", *AS_OF, str(EXAMPLES / "04-hepatic-disease.ttl"), "--output", "sock"), 2, "is a socket")
    assert stat.S_ISSOCK(os.lstat(tmp_path / "sock").st_mode)


def test_output_is_a_device():
    """Only the refusal is checked: nothing is ever written to a device here (as root, /dev/null was replaced)."""
    before = os.stat("/dev/null")
    assert stat.S_ISCHR(before.st_mode)
    with pytest.raises(output.OutputError, match="character device"):
        output.refuse_unsafe(Path("/dev/null"))
    one_line(invoke("export", "fhir-cpg", "--output", "/dev/null"), 2, "/dev/null", "character device")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_publish_uses_the_same_writer(tmp_path):
    fifo = tmp_path / "SHA256SUMS"
    os.mkfifo(fifo)
    one_line(invoke("release", "--output", str(tmp_path), "--version", "9.9.9"), 2, "SHA256SUMS", "is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_an_existing_output_keeps_its_mode(tmp_path):
    target = tmp_path / "actions.json"
    target.write_text("previous")
    target.chmod(0o600)
    assert invoke("recommend", *AS_OF, str(EXAMPLES / "04-hepatic-disease.ttl"), "--output", str(target)).exit_code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text())["patients"][0]["patient"] == "dmitri"
    fresh = tmp_path / "fresh.json"  # a new file: 0666 less the umask, as any tool makes it
    assert invoke("recommend", *AS_OF, str(EXAMPLES / "04-hepatic-disease.ttl"), "--output", str(fresh)).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["actions.json", "fresh.json"]


def _limited(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("jsonl", [False, True])
def test_a_full_disk_is_one_line_and_the_old_file_stays(tmp_path, jsonl):
    """RLIMIT_FSIZE in the child: its writes past 4 KB fail with EFBIG, as a full disk fails with ENOSPC."""
    target = tmp_path / "findings.json"
    target.write_text("previous results")
    done = subprocess.run([sys.executable, "-m", "neuropathy_kg.cli", "validate", *AS_OF, str(EXAMPLES), "--output", str(target),
                           "--format", "json", *(["--jsonl"] if jsonl else [])],
                          capture_output=True, text=True, preexec_fn=_limited(4096), timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip() and "patients processed" not in line]
    assert done.returncode == 2, done.stderr
    assert lines == [f"neuropathy-kg: {target}: cannot write output (File too large)"], done.stderr
    assert target.read_text() == "previous results"
    assert os.listdir(tmp_path) == ["findings.json"], "no temporary file left"


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_full_disk_under_standard_output_is_one_line(tmp_path, unbuffered):
    """Standard output redirected onto a full disk: one line, exit 2, never a truncated document with exit 0
    (with PYTHONUNBUFFERED a short write used to be dropped silently)."""
    with open(tmp_path / "redirected.json", "w") as redirected:
        done = subprocess.run([sys.executable, "-m", "neuropathy_kg.cli", "recommend", *AS_OF, str(EXAMPLES), "--format", "json"],
                              stdout=redirected, stderr=subprocess.PIPE, text=True, preexec_fn=_limited(4096), timeout=120,
                              env={**os.environ, "PYTHONUNBUFFERED": unbuffered})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["neuropathy-kg: standard output: cannot write output (File too large)"]


# ---------------------------------------------------------------- process faults

#: Runs the CLI with the recommend step patched so that the first chunk a worker gets writes the worker's
#: pid to MARKER and then waits (the run is then certainly mid-way, with its spool on disk).
DRIVER = r"""
import os, sys, time
import neuropathy_kg.pipeline as pipeline
marker, arguments = sys.argv[1], sys.argv[2:]
parent, original = os.getpid(), pipeline.recommend_chunk

def waiting(chunk, *args, **kwargs):
    if os.getpid() != parent:
        try:
            descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(descriptor, str(os.getpid()).encode())
            os.close(descriptor)
            time.sleep(60)
    return original(chunk, *args, **kwargs)

pipeline.recommend_chunk = waiting
from neuropathy_kg.cli import main
main(args=arguments, prog_name="neuropathy-kg")
"""


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return generate(400, tmp_path_factory.mktemp("faults") / "export", seed=5)


def _mid_run(tmp_path: Path, export: Path, act) -> tuple[subprocess.CompletedProcess, Path, Path]:
    spool, results = tmp_path / "tmp", tmp_path / "out"
    spool.mkdir()
    results.mkdir()
    marker = tmp_path / "worker.pid"
    process = subprocess.Popen([sys.executable, "-c", DRIVER, str(marker), "recommend", *AS_OF, str(export), "--jobs", "2",
                                "--jsonl", "--output", str(results / "actions.jsonl")],
                               env={**os.environ, "TMPDIR": str(spool)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert marker.exists(), process.communicate(timeout=10)
    assert os.listdir(spool), "the spool is on disk mid-run"
    started = time.monotonic()
    act(process, int(marker.read_text()))
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - started < 10, "no hang"
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), spool, results


def test_a_killed_worker_ends_the_run(tmp_path, export):
    done, spool, results = _mid_run(tmp_path, export, lambda process, worker: os.kill(worker, signal.SIGKILL))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "a worker process died" in lines[0] and "parts of the input" in lines[0] and "were lost" in lines[0], lines
    assert "Traceback" not in done.stderr
    assert os.listdir(spool) == [] and os.listdir(results) == [], "no spool, no output, no temporary file"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_workers_and_cleans_up(tmp_path, export, signum, code):
    workers = []

    def act(process, worker):
        workers.append(worker)
        process.send_signal(signum)

    done, spool, results = _mid_run(tmp_path, export, act)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and not done.stderr.strip(), done.stderr
    assert os.listdir(spool) == [] and os.listdir(results) == []
    with pytest.raises(ProcessLookupError):  # the waiting worker was stopped with the run
        os.kill(workers[0], 0)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_full_spool_disk_is_one_line(tmp_path, export, jobs):
    spool = tmp_path / "tmp"
    spool.mkdir()
    done = subprocess.run([sys.executable, "-m", "neuropathy_kg.cli", "recommend", *AS_OF, str(export), "--jsonl", "--jobs", jobs],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=_limited(50_000), timeout=120,
                          env={**os.environ, "TMPDIR": str(spool)})
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "cannot spool the NDJSON export (File too large)" in lines[0] and "TMPDIR" in lines[0]
    assert os.listdir(spool) == []


# Results whatever --jobs, on the executor: tests/test_population.py::test_jobs_and_json_lines.


# ---------------------------------------------------------------- endpoints

class Fake:
    """A threaded HTTP server on 127.0.0.1 whose answers a test writes (``answer(handler)``); it records
    each request's path and headers and counts the body bytes it sent."""

    def __init__(self, answer) -> None:
        fake = self
        self.seen: list[tuple[str, dict]] = []
        self.sent = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's naming
                self._handle()

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._handle()

            do_PUT = do_POST  # load replaces its graph with PUT (Graph Store Protocol)

            def _handle(self):
                fake.seen.append((self.path, dict(self.headers)))
                try:
                    answer(self, fake)
                except OSError:
                    pass  # the client went away

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(endpoint, "BACKOFF_SECONDS", 0.01)
    made = []

    def make(answer):
        made.append(Fake(answer))
        return made[-1]

    yield make
    for server in made:
        server.close()


def status(code: int, body: bytes = b"", **headers):
    def answer(handler, _fake):
        handler.send_response(code)
        for name, value in {"Content-Length": str(len(body)), **{k.replace("_", "-"): v for k, v in headers.items()}}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
    return answer


TOKEN = {"NEUROPATHY_KG_ENDPOINT_TOKEN": "tok-3f9a-secret"}
ONE = str(EXAMPLES / "04-hepatic-disease.ttl")


def test_a_cross_origin_redirect_never_carries_credentials(fake):
    elsewhere = fake(status(204))
    store = fake(lambda handler, _fake: status(307, Location=f"{elsewhere.url}/store?default")(handler, _fake))
    result = invoke("load", "--store", f"{store.url}/store", ONE, env=TOKEN)
    one_line(result, 2, "redirect to another origin", "refused")
    assert "loaded" not in result.stderr
    assert elsewhere.seen == [], "the other origin was never contacted"
    assert store.seen[0][1]["Authorization"] == "Bearer tok-3f9a-secret"
    query = invoke("query", "patient-facts", "--endpoint", f"{store.url}/sparql", env=TOKEN)
    one_line(query, 2, "redirect to another origin")
    assert elsewhere.seen == []


def test_a_same_origin_307_is_followed_and_a_302_to_an_upload_is_not_success(fake):
    def moved(handler, _fake):
        if handler.path.startswith("/old"):
            status(307, Location="/store?default")(handler, _fake)
        else:
            status(204)(handler, _fake)
    store = fake(moved)
    assert invoke("load", "--store", f"{store.url}/old", ONE, env=TOKEN).exit_code == 0
    assert {path.split("?")[0] for path, _h in store.seen} == {"/old", "/store"}
    assert all(h.get("Authorization") == "Bearer tok-3f9a-secret" for _p, h in store.seen), "same origin: credentials kept"
    found = fake(status(302, Location="/login"))
    result = invoke("load", "--store", f"{found.url}/store", ONE, env=TOKEN)
    one_line(result, 2, "HTTP 302", "not followed")
    assert "loaded" not in result.stderr and len(found.seen) == 1
    ok = fake(status(200, b"<html>a proxy page</html>"))  # 2xx is the store's confirmation
    assert invoke("load", "--store", f"{ok.url}/store", ONE).exit_code == 0


def _trickle_body(handler, _fake):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/sparql-results+json")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(300):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.1)


def _trickle_headers(handler, _fake):
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    for _ in range(300):
        handler.wfile.write(b"X")
        handler.wfile.flush()
        time.sleep(0.1)


@pytest.mark.parametrize("answer", [_trickle_body, _trickle_headers], ids=["body", "headers"])
def test_a_trickling_endpoint_ends_at_the_deadline(fake, answer):
    server = fake(answer)
    started = time.monotonic()
    result = invoke("query", "patient-facts", "--endpoint", f"{server.url}/sparql", "--timeout", "1")
    elapsed = time.monotonic() - started
    one_line(result, 2, "timed out", f"after {endpoint.ATTEMPTS} attempts")
    assert elapsed < endpoint.ATTEMPTS * 1 + 1.5, f"{elapsed:.1f} s: each attempt ends at --timeout"


def _flood(handler, fake_server):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/sparql-results+json")
    handler.send_header("Connection", "close")
    handler.end_headers()
    block = b'{"results": {"bindings": [' + b" " * 65000
    for _ in range(2000):  # 130 MB if nobody stops reading
        handler.wfile.write(block)
        fake_server.sent += len(block)


def test_a_flood_is_cut_at_the_cap_in_bounded_memory(fake):
    server = fake(_flood)
    tracemalloc.start()
    try:
        result = invoke("query", "patient-facts", "--endpoint", f"{server.url}/sparql", env={"NEUROPATHY_KG_MAX_ANSWER_MB": "2"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line(result, 2, "larger than the 2 MB limit", "NEUROPATHY_KG_MAX_ANSWER_MB")
    assert len(server.seen) == 1, "an oversized answer is not asked for again"
    assert peak < 24 << 20, f"peak {peak >> 20} MB"
    time.sleep(0.2)
    assert server.sent < 30 << 20, f"the client stopped reading ({server.sent >> 20} MB sent)"
    declared = fake(status(200, b"", Content_Length=str(300 << 20)))  # announced as 300 MB: refused unread
    one_line(invoke("query", "patient-facts", "--endpoint", f"{declared.url}/sparql"), 2, "larger than the 64 MB limit")


@pytest.mark.parametrize("token", ["tok-3f9a-secret\n", "tok-3f9a-secret\r\n", "tok-3f9a\nsecret"])
def test_a_token_is_never_printed(fake, token):
    server = fake(status(500))
    result = invoke("query", "patient-facts", "--endpoint", f"{server.url}/sparql", env={"NEUROPATHY_KG_ENDPOINT_TOKEN": token})
    line = one_line(result, 2)
    assert "tok-3f9a" not in result.stderr and "secret" not in result.stderr.replace("(not shown)", ""), line
    if "\nsecret" in token:
        assert "control character" in line and server.seen == []
    else:
        assert server.seen[0][1]["Authorization"] == "Bearer tok-3f9a-secret", "a trailing newline is not part of the token"


def test_userinfo_in_a_url_is_never_printed(fake):
    server = fake(status(500))
    url = server.url.replace("http://", "http://alice:hunter2@") + "/sparql"
    for command in (["query", "patient-facts", "--endpoint", url], ["load", "--store", url, ONE]):
        result = invoke(*command)
        line = one_line(result, 2, "***@127.0.0.1", "HTTP 500")
        assert "hunter2" not in result.output + result.stderr and "alice" not in line
    assert server.seen[0][1]["Authorization"].startswith("Basic ")  # still used, as the user meant
    stored = fake(status(204))
    result = invoke("load", "--store", stored.url.replace("http://", "http://alice:hunter2@") + "/store", ONE)
    assert result.exit_code == 0 and "replaced the default graph at http://***@" in result.stderr, result.stderr
    assert "hunter2" not in result.stderr and "alice" not in result.stderr


def test_refused_connection_and_unknown_host_are_one_line(fake):
    server = fake(status(204))
    port = server.server.server_address[1]
    server.close()
    one_line(invoke("query", "patient-facts", "--endpoint", f"http://127.0.0.1:{port}/sparql"), 2, "after 3 attempts")


# ---------------------------------------------------------------- local queries stay local

@pytest.mark.parametrize("engine", ["oxigraph", "rdflib"])
def test_service_in_a_local_query_is_refused(fake, tmp_path, engine):
    remote = fake(status(200, b'{"head": {"vars": []}, "results": {"bindings": []}}', Content_Type="application/sparql-results+json"))
    nested = tmp_path / "nested.rq"
    nested.write_text(f"SELECT ?s WHERE {{ ?s ?p ?o . FILTER EXISTS {{ OPTIONAL {{ SERVICE SILENT <{remote.url}/sparql> "
                      "{ ?s ?q ?r } } } }")
    escaped = tmp_path / "escaped.rq"  # SPARQL expands \u escapes before parsing: \u0053ERVICE is SERVICE
    escaped.write_text(f"SELECT * WHERE {{ \\u0053ERVICE <{remote.url}/sparql> {{ ?s ?p ?o }} }}")
    for query in (nested, escaped):
        one_line(invoke("query", str(query), ONE, "--engine", engine), 2, "SERVICE clauses are refused")
    assert remote.seen == [], "no request left the machine"
    harmless = tmp_path / "harmless.rq"  # the word as data, a variable and a comment is no clause
    harmless.write_text('SELECT ?service WHERE { BIND("SERVICE <http://x/> { }" AS ?service) } # SERVICE <http://x/>')
    result = invoke("query", str(harmless), ONE, "--engine", engine, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert sparql_json_rows(result.stdout) == [{"service": "SERVICE <http://x/> { }"}]


# ---------------------------------------------------------------- --output as given (review2 entries 2, 3)

def test_output_dash_is_standard_output_not_a_file_named_dash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("recommend", *AS_OF, "--format", "json", "--output", "-", str(EXAMPLES / "03-renal-impairment.ttl"))
    assert result.exit_code == 0 and json.loads(result.stdout)["patients"][0]["patient"] == "carmen"
    assert not (tmp_path / "-").exists() and list(tmp_path.iterdir()) == []
    exported = invoke("export", "fhir-cpg", "--output", "-")
    assert exported.exit_code == 0 and json.loads(exported.stdout)["resourceType"] == "Bundle"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [("recommend", *AS_OF), ("validate", *AS_OF), ("export", "fhir-cpg")])
def test_output_with_a_trailing_slash_or_empty_is_refused_naming_it(tmp_path, command):
    inputs = [str(EXAMPLES / "03-renal-impairment.ttl")] if command[0] != "export" else []
    folder = str(tmp_path / "new") + "/"
    one_line(invoke(*command, "--output", folder, *inputs), 2, f"--output '{folder}'", "folder")
    assert not (tmp_path / "new").exists()
    one_line(invoke(*command, "--output", "", *inputs), 2, "--output ''", "empty")
