"""Memory of validate --summary --report over growing generated populations: flat in the number of
patients (issue 18). For each size, a synthetic export (bench/synthetic.py) is validated with
--jsonl --output FILE --summary --report; the peak resident memory of the process tree (the CLI and its
workers, summed, sampled every 0.2 s from /proc) and the parent's own peak (getrusage of the child) are
printed as a Markdown table row.

    .venv/bin/python bench/scorecard.py [SIZES...] [--jobs N] [--work FOLDER]

Default sizes 10000 50000 100000. The numbers in bench/README.md are from this script.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import AS_OF, generate  # noqa: E402

CLI = [sys.executable, "-m", "neuropathy_kg.cli"]
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc; 0 for those that ended)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
        rss[int(entry.name)] = int(statm.split()[1]) * PAGE
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending.extend(children.get(pid, []))
    return total


def measure(folder: Path, out: Path, jobs: int) -> tuple[float, int, int, int]:
    """(seconds, peak tree RSS, peak parent RSS, exit status) of one validate --summary --report run."""
    command = [*CLI, "validate", "--as-of", AS_OF.isoformat(), "--jsonl", "--output", str(out / "out.jsonl"),
               "--summary", str(out / "summary.json"), "--report", str(out / "report.html"), "--jobs", str(jobs),
               "--no-progress", str(folder)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    for stale in ("summary.json", "report.html"):  # a previous run's files must not pass for this one's
        (out / stale).unlink(missing_ok=True)
    errors = open(out / "stderr.txt", "w")
    process = subprocess.Popen(command, stderr=errors)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    status = process.wait()
    sampler.join()
    errors.close()
    seconds = time.monotonic() - started
    parent = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB, the largest child so far
    return seconds, peak[0], max(parent, before) * 1024, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 50_000, 100_000])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--work", type=Path, help="Folder for exports and outputs (default: a temporary one).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nkg-scorecard-bench-") as temporary:
        work = args.work or Path(temporary)
        print("| patients | jobs | seconds | patients/s | peak RSS, CLI + workers (MB) | peak RSS, largest process (MB) | summary (KB) | report (KB) |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for size in args.sizes:
            folder = work / f"export-{size}"
            if not folder.exists():
                generate(size, folder)
            out = work / f"out-{size}"
            out.mkdir(exist_ok=True)
            seconds, tree, largest, status = measure(folder, out, args.jobs)
            if status not in (0, 1) or not (out / "summary.json").exists():
                tail = (out / "stderr.txt").read_text()[-2000:]
                sys.exit(f"validate exited {status} at {size} patients without a summary:\n{tail}")
            print(f"| {size:,} | {args.jobs} | {seconds:.0f} | {size / seconds:.0f} | {tree / 2**20:.0f} | "
                  f"{largest / 2**20:.0f} | {(out / 'summary.json').stat().st_size / 1024:.0f} | "
                  f"{(out / 'report.html').stat().st_size / 1024:.0f} |", flush=True)


if __name__ == "__main__":
    main()
