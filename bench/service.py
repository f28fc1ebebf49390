"""CDS Hooks patient-view latency and throughput of `neuropathy-kg serve` on Synthea-sized patients,
side by side with a baseline revision in the same run.

    .venv/bin/python bench/service.py [--patient ../shared/data/synthea/Terrilyn_Little_*.json.gz]
                                      [--request docs/cds-hooks/patient-view.json]
                                      [--cards-from docs/cds-hooks/patient-view.json]
                                      [--baseline 1a4576e] [--requests 200] [--clients 16] [--burst 64]
                                      [--stages 20]

Starts the real service (`neuropathy-kg serve`, uvicorn, one process) on a free loopback port, turns
the patient's full Bundle (every resource type an EHR export carries) into the prefetch CDS Hooks
clients send (the Patient, and a searchset Bundle per prefetch template's resource type), and measures
over HTTP (httpx):
- latency, warm: the same request sent sequentially (after 10 warm-up requests): p50, p95, max, and
  the server's CPU time a request (/proc: user + system, which the machine's load changes less);
- throughput: ``--clients`` concurrent clients sending ``--requests`` requests in all;
- a burst of ``--burst`` requests at once: how many fail (target: none).
``--cards-from REQUEST``: the Synthea record given to the patient of a prepared request (its prefetch
plus every Synthea resource, re-pointed at that patient), so that the request is Synthea-sized and still
answers cards (Terrilyn Little's record alone is out of the guideline's scope: no card).
``--stages N``: no server; where a request's CPU goes, stage by stage, in this process (median of N).
``--baseline REV``: the same measurements of the service at git revision REV (its tree exported to a
temporary folder, run with this venv), the sequential requests of the two interleaved (A B, B A, ...) so
that the machine's load falls on both alike; the ratios are the result, absolute times drift.
Targets (issue 17): p95 under 100 ms, no error under 64 concurrent requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY_OF = {"Patient": "patient", "Condition": "conditions", "Observation": "observations",
          "MedicationRequest": "medicationRequests", "MedicationStatement": "medicationStatements",
          "MedicationAdministration": "medicationAdministrations", "AllergyIntolerance": "allergies",
          "Procedure": "procedures"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request_for(path: str) -> tuple[dict, int]:
    """(the patient-view request for the patient of this Synthea Bundle, resources in its prefetch)."""
    bundle = json.loads(gzip.open(path).read())
    resources = [e["resource"] for e in bundle["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch: dict = {key: {"resourceType": "Bundle", "type": "searchset", "entry": []} for key in KEY_OF.values()}
    prefetch["patient"] = patient
    count = 1
    for resource in resources:
        key = KEY_OF.get(resource["resourceType"])
        if key and key != "patient":
            prefetch[key]["entry"].append({"resource": resource})
            count += 1
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/1", "patientId": patient["id"]}, "prefetch": prefetch}, count


def with_cards_of(path: Path, synthea: str) -> tuple[dict, int]:
    """The prepared request at ``path`` with the Synthea record's resources added to its prefetch,
    re-pointed at its patient (subject and patient references), the Synthea Patient left out."""
    request = json.loads(path.read_text())
    pid = request["context"]["patientId"]
    bundle = json.loads(gzip.open(synthea).read())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        key = KEY_OF.get(resource["resourceType"])
        if key is None or key == "patient":
            continue
        for field in ("subject", "patient"):
            if field in resource:
                resource[field] = {"reference": f"Patient/{pid}"}
        request["prefetch"].setdefault(key, {"resourceType": "Bundle", "type": "searchset", "entry": []})
        request["prefetch"][key].setdefault("entry", []).append({"resource": resource})
    return request, prefetched_count(request)


def prefetched_count(request: dict) -> int:
    return sum(len(v.get("entry", [])) if v and v.get("resourceType") == "Bundle" else int(v is not None)
               for v in request["prefetch"].values())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): what a request costs whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reference_loop() -> float:
    """Seconds for a fixed pure-Python loop: how fast the shared machine is at the moment."""
    started = time.perf_counter()
    sum(i * i for i in range(3_000_000))
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def run(servers: dict[str, tuple[str, int]], body: bytes, requests: int, clients: int, burst: int) -> dict:
    """Per server (name -> (url, pid)): latency of sequential requests (interleaved across servers),
    CPU a request, throughput under ``clients`` concurrent clients, errors in a burst."""
    headers = {"Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=max(clients, burst))
    names = list(servers)
    results: dict[str, dict] = {name: {"latencies": []} for name in names}
    async with contextlib.AsyncExitStack() as stack:
        client = {name: await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=300, limits=limits))
                  for name, (url, _pid) in servers.items()}
        for name in names:
            for _ in range(10):
                (await client[name].post("/cds-services/patient-view", content=body, headers=headers)).raise_for_status()
        cpu_before = {name: cpu_seconds(pid) for name, (_url, pid) in servers.items()}
        for index in range(requests):
            for name in (names if index % 2 == 0 else names[::-1]):
                started = time.perf_counter()
                response = await client[name].post("/cds-services/patient-view", content=body, headers=headers)
                results[name]["latencies"].append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                results[name]["cards"] = len(response.json()["cards"])
        for name, (_url, pid) in servers.items():
            results[name]["cpuMs"] = (cpu_seconds(pid) - cpu_before[name]) * 1000 / requests

        for name in names:
            queue = asyncio.Queue()
            for _ in range(requests):
                queue.put_nowait(None)
            errors = 0

            async def worker():
                nonlocal errors
                while not queue.empty():
                    queue.get_nowait()
                    response = await client[name].post("/cds-services/patient-view", content=body, headers=headers)
                    errors += response.status_code != 200

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            elapsed = time.perf_counter() - started

            async def one():
                try:
                    return (await client[name].post("/cds-services/patient-view", content=body, headers=headers)).status_code
                except httpx.HTTPError as error:
                    return type(error).__name__

            burst_started = time.perf_counter()
            statuses = await asyncio.gather(*(one() for _ in range(burst)))
            latencies = results[name]["latencies"]
            results[name].update({"p50": statistics.median(latencies), "p95": percentile(latencies, 0.95), "max": max(latencies),
                                  "throughput": requests / elapsed, "concurrentErrors": errors, "burst": burst,
                                  "burstErrors": sum(1 for s in statuses if s != 200),
                                  "burstSeconds": time.perf_counter() - burst_started})
    return results


def stages(body: bytes, repeats: int) -> dict[str, float]:
    """Where a patient-view request's CPU goes, in this process (no HTTP): the median over ``repeats``
    of each stage's process time, in ms, after three warm-up runs."""
    import datetime as dt

    import orjson

    from neuropathy_kg import guideline, pipeline
    from neuropathy_kg import service as svc
    from neuropathy_kg.batch import warm_up
    from neuropathy_kg.engine import new_store
    from neuropathy_kg.load import assessment_ntriples

    warm_up()
    svc.plan()
    clock = time.process_time
    as_of = dt.date(2026, 11, 24)

    def once() -> dict[str, float]:
        spent, mark = {}, clock()

        def lap(name):
            nonlocal mark
            now = clock()
            spent[name] = (now - mark) * 1000
            mark = now

        parsed = svc.parse_hook_body(body)
        lap("parse (msgspec scan, heads, orjson of the kept)")
        context = svc.check_hook_request("patient-view", parsed)
        resources = [r for key, value in (parsed.get("prefetch") or {}).items() if key in svc.PREFETCH
                     for r in svc.resources_of(value)]
        lap("request checks")
        patient = svc.patient_data(resources, context["patientId"], "bench")
        lap(f"FHIR reader ({len(resources)} resources kept)")
        store = new_store("oxigraph")
        store.add_static_ntriples(guideline.ontology_ntriples())
        lap("ontology into a new store")
        store.add_ntriples(b"".join([assessment_ntriples(as_of), patient.ntriples]))
        lap("patient into the store")
        for _name, update in guideline.fact_updates():
            store.update(update)
        lap(f"fact updates ({len(guideline.fact_updates())})")
        recommended = pipeline._recommend_chunk(store, [patient])[0]
        lap(f"recommend queries ({len(guideline.action_queries()) + 3})")
        validated = pipeline._validate_chunk(store, [patient])[0]
        lap(f"compiled shapes ({len(pipeline.compiled_shapes())})")
        bundle = svc.recommend_patient_bundle(recommended, as_of.isoformat(), checked=False)
        lap("$apply Bundle")
        cards = (svc.finding_cards(validated["findings"], "patient-view", context["patientId"], as_of)
                 + svc.action_cards(bundle, recommended, "patient-view", context["patientId"], as_of, resources))
        lap("cards")
        orjson.dumps({"cards": cards})
        lap("answer JSON")
        return spent

    for _ in range(3):
        once()
    runs = [once() for _ in range(repeats)]
    result = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    result["total"] = statistics.median(sum(run.values()) for run in runs)
    return result


def start(root: Path | None) -> tuple[subprocess.Popen, str]:
    """`neuropathy-kg serve` on a free port: this checkout's, or the tree exported at ``root``."""
    env = dict(os.environ)
    if root is not None:
        env.update({"PYTHONPATH": str(root / "src"), "NEUROPATHY_KG_HOME": str(root)})
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "neuropathy_kg.cli", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=root or ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            httpx.get(f"{url}/cds-services", timeout=1).raise_for_status()
            return server, url
        except httpx.HTTPError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                sys.exit(f"the service did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)


def exported(revision: str, into: Path) -> Path:
    """The tree of ``revision`` of this repository, written to ``into`` (git archive)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = next((found for root in (ROOT.parent, ROOT.parents[1])
                    if (found := sorted(glob.glob(str(root / "shared/data/synthea/Terrilyn_Little_*.json.gz"))))), [])
    parser.add_argument("--patient", default=default[0] if default else None)
    parser.add_argument("--request", type=Path, help="post this prepared patient-view request instead (e.g. docs/cds-hooks/patient-view.json)")
    parser.add_argument("--cards-from", type=Path, help="a prepared request whose patient gets the Synthea record (see above)")
    parser.add_argument("--baseline", help="a git revision to measure side by side (e.g. 1a4576e)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--burst", type=int, default=64)
    parser.add_argument("--stages", type=int, metavar="N",
                        help="instead: where the CPU of a request goes, stage by stage in this process (median of N)")
    args = parser.parse_args()
    if not args.patient and not args.request:
        sys.exit("no Synthea patient: give --patient FILE.json.gz")
    loop_before = reference_loop()
    if args.request:
        request = json.loads(args.request.read_text())
        count, label = prefetched_count(request), args.request.name
    elif args.cards_from:
        request, count = with_cards_of(args.cards_from, args.patient)
        label = f"{args.cards_from.name} + {Path(args.patient).name}"
    else:
        (request, count), label = request_for(args.patient), Path(args.patient).name
    body = json.dumps(request).encode()
    if args.stages:
        print(f"patient {label}: {count} prefetched resources, {len(body) / 1e6:.1f} MB request; CPU ms, median of {args.stages}")
        for name, ms in stages(body, args.stages).items():
            print(f"{ms:8.1f}  {name}")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        return
    with tempfile.TemporaryDirectory() as folder:
        roots = {"this": None}
        if args.baseline:
            roots[args.baseline] = exported(args.baseline, Path(folder))
        started = {name: start(root) for name, root in roots.items()}
        try:
            results = asyncio.run(run({name: (url, server.pid) for name, (server, url) in started.items()},
                                      body, args.requests, args.clients, args.burst))
        finally:
            for server, _url in started.values():
                server.terminate()
                server.wait(10)
    print(f"patient {label}: {count} prefetched resources, {len(body) / 1e6:.1f} MB request")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; reference loop "
          f"{loop_before:.2f} s before, {reference_loop():.2f} s after")
    print(f"{'service':>10} {'cards':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'CPU ms/req':>10} {'req/s':>6} "
          f"{'errors (' + str(args.clients) + ' clients; ' + str(args.burst) + ' at once)':>30}")
    for name, result in results.items():
        print(f"{name:>10} {result['cards']:>5} {result['p50']:>8.1f} {result['p95']:>8.1f} {result['max']:>8.1f} "
              f"{result['cpuMs']:>10.1f} {result['throughput']:>6.1f} "
              f"{str(result['concurrentErrors']) + '; ' + str(result['burstErrors']) + ' (' + format(result['burstSeconds'], '.1f') + ' s)':>30}")
    if args.baseline:
        new, old = results["this"], results[args.baseline]
        print(f"this / {args.baseline}: p50 {new['p50'] / old['p50']:.2f}, p95 {new['p95'] / old['p95']:.2f}, "
              f"CPU {new['cpuMs'] / old['cpuMs']:.2f}, throughput {new['throughput'] / old['throughput']:.2f}x")


if __name__ == "__main__":
    main()
