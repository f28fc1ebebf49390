"""CDS Hooks patient-view latency and throughput of `neuropathy-kg serve` on Synthea-sized patients.

    .venv/bin/python bench/service.py [--patient ../shared/data/synthea/Terrilyn_Little_*.json.gz]
                                      [--request docs/cds-hooks/patient-view.json]
                                      [--requests 200] [--clients 16] [--burst 64]

Starts the real service (`neuropathy-kg serve`, uvicorn, one process) on a free loopback port, turns
the patient's full Bundle (every resource type an EHR export carries) into the prefetch CDS Hooks
clients send (the Patient, and a searchset Bundle per prefetch template's resource type), and measures
over HTTP (httpx):
- latency, warm: the same request sent sequentially (after 10 warm-up requests): p50, p95, max;
- throughput: ``--clients`` concurrent clients sending ``--requests`` requests in all;
- a burst of ``--burst`` requests at once: how many fail (target: none).
Targets (issue 17): p95 under 100 ms, no error under 64 concurrent requests.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
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


async def run(url: str, body: bytes, requests: int, clients: int, burst: int, pid: int) -> dict:
    headers = {"Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=max(clients, burst))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for _ in range(10):
            (await client.post("/cds-services/patient-view", content=body, headers=headers)).raise_for_status()
        latencies = []
        cpu_before = cpu_seconds(pid)
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.post("/cds-services/patient-view", content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / requests
        cards = len(response.json()["cards"])

        queue = asyncio.Queue()
        for _ in range(requests):
            queue.put_nowait(None)
        errors = 0

        async def worker():
            nonlocal errors
            while not queue.empty():
                queue.get_nowait()
                response = await client.post("/cds-services/patient-view", content=body, headers=headers)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started

        async def one():
            try:
                return (await client.post("/cds-services/patient-view", content=body, headers=headers)).status_code
            except httpx.HTTPError as error:
                return type(error).__name__

        burst_started = time.perf_counter()
        statuses = await asyncio.gather(*(one() for _ in range(burst)))
        burst_elapsed = time.perf_counter() - burst_started
    return {"cards": cards, "cpuMs": cpu_ms, "p50": statistics.median(latencies), "p95": percentile(latencies, 0.95), "max": max(latencies),
            "throughput": requests / elapsed, "concurrentErrors": errors,
            "burst": burst, "burstErrors": sum(1 for s in statuses if s != 200), "burstSeconds": burst_elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = sorted(glob.glob(str(ROOT / "../shared/data/synthea/Terrilyn_Little_*.json.gz")))
    parser.add_argument("--patient", default=default[0] if default else None)
    parser.add_argument("--request", type=Path, help="post this prepared patient-view request instead (e.g. docs/cds-hooks/patient-view.json)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--burst", type=int, default=64)
    args = parser.parse_args()
    if not args.patient and not args.request:
        sys.exit("no Synthea patient: give --patient FILE.json.gz")
    loop_before = reference_loop()
    if args.request:
        request = json.loads(args.request.read_text())
        count = sum(len(v.get("entry", [])) if v and v.get("resourceType") == "Bundle" else int(v is not None)
                    for v in request["prefetch"].values())
    else:
        request, count = request_for(args.patient)
    body = json.dumps(request).encode()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "neuropathy_kg.cli", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/cds-services", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit(f"the service did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
        result = asyncio.run(run(url, body, args.requests, args.clients, args.burst, server.pid))
    finally:
        server.terminate()
        server.wait(10)
    print(f"patient {(args.request or Path(args.patient)).name}: {count} prefetched resources, {len(body) / 1e6:.1f} MB request, "
          f"{result['cards']} cards")
    print(f"latency (warm, sequential, {args.requests} requests): p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms, "
          f"max {result['max']:.1f} ms; server CPU {result['cpuMs']:.1f} ms a request")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; reference loop "
          f"{loop_before:.2f} s before, {reference_loop():.2f} s after")
    print(f"throughput ({args.clients} concurrent clients): {result['throughput']:.1f} requests/s, "
          f"{result['concurrentErrors']} errors")
    print(f"burst of {result['burst']} at once: {result['burstErrors']} errors, all answered in {result['burstSeconds']:.2f} s")


if __name__ == "__main__":
    main()
