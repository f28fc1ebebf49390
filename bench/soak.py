"""Soak run: validate a generated Bulk NDJSON export of a given size with bad lines injected, and check
that no patient is lost in silence (issue 14, "Done when").

    .venv/bin/python bench/soak.py --megabytes 100 [--jobs 2] [--folder /tmp/soak] [--keep]

The export comes from bench/synthetic.py (about 3.4 KB per patient). Into its files, every
``--every``-th line, a bad line is inserted, cycling through four kinds, each of which must be reported
with its file and line and skipped alone: a broken JSON line; an IVIG MedicationStatement dated
9999-12-31 (its course would end past the last date: OverflowError); an IVIG administration over
0001-01-01..9999-12-31 (3.6 million days, never expanded); an Observation naming its patient by an
identifier no Patient has. Then ``neuropathy-kg validate --jsonl`` runs over the folder, and the run
must show

    patients in (Patient lines) = patients out (result lines) + patients reported failed
    lines injected = lines reported (summary failedInputs), each at the file:line it was put at

It prints one JSON object with the counts, the time and the peak memory of the run, and exits 1 where
an equation does not hold. The issue asks for 1 GB: run at 100 MB and at 1 GB (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import generate  # noqa: E402

BYTES_PER_PATIENT = 3_400
ATC = "http://www.whocc.no/atc"
IVIG = {"coding": [{"system": ATC, "code": "J06BA02", "display": "immunoglobulins, normal human"}]}


def bad_line(kind: int, serial: int, pid: str) -> str:
    """One injected line of the given kind (0-3), naming an existing patient where it names one."""
    if kind == 0:
        return '{"resourceType": "Observation", "id": "broken-%d", ' % serial
    if kind == 1:
        return json.dumps({"resourceType": "MedicationStatement", "id": f"overflow-{serial}", "status": "completed",
                           "subject": {"reference": f"Patient/{pid}"}, "medicationCodeableConcept": IVIG,
                           "effectiveDateTime": "9999-12-31"})
    if kind == 2:
        return json.dumps({"resourceType": "MedicationAdministration", "id": f"period-{serial}", "status": "completed",
                           "subject": {"reference": f"Patient/{pid}"}, "medicationCodeableConcept": IVIG,
                           "effectivePeriod": {"start": "0001-01-01", "end": "9999-12-31"}, "dosage": {"dose": {"value": 28, "unit": "g"}}})
    return json.dumps({"resourceType": "Observation", "id": f"orphan-{serial}", "status": "final",
                       "subject": {"identifier": {"system": "urn:soak:mrn", "value": f"nobody-{serial}"}},
                       "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                       "valueQuantity": {"value": 70, "unit": "kg"}})


def inject(folder: Path, every: int) -> list[str]:
    """Insert a bad line every ``every`` lines of each file; the "file:line" of each, in order."""
    where, serial = [], 0
    pid_pattern = re.compile(r'"reference":"Patient/([^"]+)"|"resourceType":"Patient","id":"([^"]+)"')
    for path in sorted(folder.glob("*.ndjson")):
        out_path = path.with_suffix(".tmp")
        number, last_pid = 0, "p0000000"
        with open(path) as source, open(out_path, "w") as out:
            for k, line in enumerate(source, 1):
                if (match := pid_pattern.search(line)) is not None:
                    last_pid = match.group(1) or match.group(2)
                out.write(line)
                number += 1
                if k % every == 0:
                    out.write(bad_line(serial % 4, serial, last_pid) + "\n")
                    number += 1
                    where.append(f"{path}:{number}")
                    serial += 1
        out_path.replace(path)
    return where


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=100)
    parser.add_argument("--every", type=int, default=5_000, help="a bad line after every N lines of each file")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated export")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="neuropathy-kg-soak-")) / "export"
    count = max(1, int(args.megabytes * 1_000_000 / BYTES_PER_PATIENT))
    started = time.monotonic()
    generate(count, folder, seed=17)
    injected = inject(folder, args.every)
    size = sum(p.stat().st_size for p in folder.iterdir())
    generated = time.monotonic() - started
    patients_in = sum(1 for _ in open(folder / "Patient.ndjson"))
    patients_in -= sum(1 for w in injected if w.startswith(f"{folder / 'Patient.ndjson'}:"))
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "neuropathy_kg.cli", "validate", "--as-of", "2026-11-24", "--jsonl",
                          "--jobs", str(args.jobs), "--no-progress", str(folder)], capture_output=True, text=True)
    seconds = time.monotonic() - started
    out = {json.loads(line)["patient"] for line in run.stdout.splitlines() if line.strip()}
    errors = [line for line in run.stderr.splitlines() if line.startswith("neuropathy-kg: ")]
    summary = errors[-1] if errors else ""
    failed_patients = int(m.group(1)) if (m := re.search(r"(\d+) patients failed", summary)) else -1
    failed_inputs = int(m.group(1)) if (m := re.search(r"(\d+) inputs or lines skipped", summary)) else -1
    reported_at = {line.split(": ", 2)[1] for line in errors[:-1]}
    report = {
        "megabytes": round(size / 1e6, 1), "patientsIn": patients_in, "patientsOut": len(out), "patientsFailed": failed_patients,
        "linesInjected": len(injected), "linesReported": failed_inputs, "injectedNotReported": sorted(set(injected) - reported_at)[:5],
        "exitCode": run.returncode, "tracebacks": run.stderr.count("Traceback"), "generateSeconds": round(generated, 1),
        "validateSeconds": round(seconds, 1), "patientsPerSecond": round(len(out) / seconds), "peakMemoryMBOfWorkers":
        round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }
    holds = (patients_in == len(out) + failed_patients and len(injected) == failed_inputs
             and not report["injectedNotReported"] and report["tracebacks"] == 0 and run.returncode == 2)
    report["holds"] = holds
    print(json.dumps(report, indent=2))
    if not args.keep and args.folder is None:
        shutil.rmtree(folder.parent)
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
