"""Fuzz the FHIR reader and the whole pipeline behind it for as long as asked (issue 6: at least 10
minutes outside CI). The check is tests/test_fuzz.py's: any exception other than a one-line InputError,
or a pipeline failure on what the reader wrote, is a crash; hypothesis shrinks it and prints the input.

    .venv/bin/python bench/fuzz_fhir.py --minutes 10
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from fhir_fuzz import fhir_documents  # noqa: E402
from test_fuzz import check  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--batch", type=int, default=500, help="examples per hypothesis run (each run has a new seed)")
    args = parser.parse_args()
    deadline = time.monotonic() + args.minutes * 60
    inputs = with_records = rounds = 0

    def counted(document) -> None:
        nonlocal inputs, with_records
        inputs += 1
        with_records += check(*document) > 0

    while time.monotonic() < deadline:
        rounds += 1
        run = settings(max_examples=args.batch, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))(given(fhir_documents())(counted))
        seed(random.randrange(2**32))(run)()  # raises, with the shrunk input, on the first crash
    print(f"fuzzed {inputs} inputs ({with_records} reaching the rules with records) in {rounds} runs, "
          f"{args.minutes:g} minutes: no crash")


if __name__ == "__main__":
    main()
