"""The FHIR reader under fuzzed input (tests/fhir_fuzz.py), bounded for the suite; bench/fuzz_fhir.py
runs the same check for as long as asked. Whatever comes in, reading ends in patients or one-line
InputErrors, never another exception, and what it writes loads into Oxigraph and runs the whole
guideline (facts, actions, compiled shapes) without an error."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings

from fhir_fuzz import fhir_documents
from neuropathy_kg.load import InputError, _patients_in
from neuropathy_kg.pipeline import assess_chunk

AS_OF = dt.date(2026, 11, 24)


def check(name: str, data: bytes) -> int:
    """Read and run one fuzzed input; the number of records its patients carry. The reader is called
    without read_document's last-resort handler, so that a bug in it shows here as the exception it is."""
    try:
        patients, problems = _patients_in(name, data)
    except InputError as error:
        assert "\n" not in str(error)
        return 0
    assert all(isinstance(p, InputError) and "\n" not in str(p) for p in problems)
    if patients:
        results = assess_chunk(patients, AS_OF)
        assert [r["recommend"]["patient"] for r in results] == [p.id for p in patients]
    return sum(p.ntriples.count(b"/subject>") for p in patients)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fhir_documents())
def test_fhir_reader_never_crashes(document):
    check(*document)
