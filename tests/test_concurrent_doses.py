"""One current daily dose per drug (review1 D8, review2 #15 #16): the boundaries of "concurrent" and of the
summed dose's thresholds, on both engines, and the property that no output both lowers and raises one drug.

Concurrent = current on the assessment date (status active, started on or before it, not ended before it)
and not replaced by another current order (nkg:replaces, FHIR priorPrescription): queries/facts/09-medications.ru.
"""

from __future__ import annotations

import itertools

import pytest

from test_thresholds import SYMMETRIC, days_before, evaluate, med, obs

RENAL_25 = obs("c", "creatinine-clearance", 25, "2026-11-01", "mL/min")  # band 15-29: maximum 150, adequate 75
RENAL_80 = obs("c", "creatinine-clearance", 80, "2026-11-01", "mL/min")  # band >=60: maximum 600, adequate 300
CONTROLLED = obs("v", "pain-vas", 2, "2026-11-20")
UNCONTROLLED = obs("v", "pain-vas", 6, "2026-11-20")


def _two(engine: str, first: str, second: str, renal: str = RENAL_25, pain: str = CONTROLLED) -> tuple[dict, set[str], dict]:
    return evaluate(SYMMETRIC + renal + pain + first + second, engine)


@pytest.mark.parametrize(("end", "concurrent"), [(days_before(0), True), (days_before(1), False)])
def test_an_order_ending_on_the_assessment_date_is_still_concurrent(engine, end, concurrent):
    _rec, findings, actions = _two(engine, med("a", "pregabalin", 100, "2026-09-01", end=end), med("b", "pregabalin", 100, "2026-11-01"))
    assert ("dose-above-maximum:violation" in findings) is concurrent  # 200 > 150 only when both are taken
    assert ("reduce-to-renal-dose" in actions) is concurrent


@pytest.mark.parametrize(("start", "concurrent"), [(days_before(0), True), (days_before(-1), False)])
def test_an_order_starting_after_the_assessment_date_is_not_yet_concurrent(engine, start, concurrent):
    _rec, findings, _actions = _two(engine, med("a", "pregabalin", 100, "2026-09-01"), med("b", "pregabalin", 100, start))
    assert ("dose-above-maximum:violation" in findings) is concurrent


@pytest.mark.parametrize(("second", "above"), [(75, False), (76, True)])
def test_the_sum_is_judged_against_the_band_maximum(engine, second, above):
    _rec, findings, actions = _two(engine, med("a", "pregabalin", 75, "2026-09-01"), med("b", "pregabalin", second, "2026-10-01"))
    assert ("dose-above-maximum:violation" in findings) is above
    assert ("missing-renal-dose-adjustment:violation" in findings) is above
    assert ("reduce-to-renal-dose" in actions) is above
    assert "titrate-pregabalin" not in actions and "subtherapeutic-pregabalin:violation" not in findings


@pytest.mark.parametrize(("second", "low"), [(149, True), (150, False)])
def test_the_sum_is_judged_against_the_adequate_trial_dose(engine, second, low):
    _rec, findings, actions = _two(engine, med("a", "pregabalin", 150, "2026-09-01"), med("b", "pregabalin", second, "2026-09-01"),
                                   renal=RENAL_80)
    assert ("subtherapeutic-pregabalin:violation" in findings) is low
    assert ("titrate-pregabalin" in actions) is low


@pytest.mark.parametrize(("days", "adequate"), [(28, True), (27, False)])
def test_an_adequate_trial_of_the_sum_counts_from_the_latest_start(engine, days, adequate):
    """150 + 150 mg/day at CrCl 80 is the adequate 300 only since the later order started; each alone never was."""
    rec, _findings, actions = _two(engine, med("a", "pregabalin", 150, "2026-06-01"), med("b", "pregabalin", 150, days_before(days)),
                                   renal=RENAL_80, pain=UNCONTROLLED)
    assert rec["facts"]["optimizedPharmacotherapy"] is adequate
    assert ("combination-therapy" in actions) is adequate


def test_a_replaced_order_is_not_summed_and_a_replacement_that_is_not_yet_current_replaces_nothing(engine):
    old = med("a", "pregabalin", 300, "2026-09-01")
    replacing = med("b", "pregabalin", 150, "2026-11-01").replace(" .\n", " ; nkg:replaces ex:a .\n")
    _rec, findings, _actions = _two(engine, old, replacing)
    assert findings == set(), "150 mg/day replaces 300: at the band maximum, nothing to flag"
    future = med("b", "pregabalin", 150, days_before(-3)).replace(" .\n", " ; nkg:replaces ex:a .\n")
    _rec, findings, _actions = _two(engine, old, future)
    assert "dose-above-maximum:violation" in findings, "the 300 mg/day order goes on until its replacement starts"


def test_the_messages_and_rationales_name_the_summed_orders_and_write_whole_numbers(engine):
    from neuropathy_kg.load import split_patients
    from neuropathy_kg.pipeline import assess
    import rdflib

    from test_thresholds import AS_OF, PATIENT, PREFIXES

    body = SYMMETRIC + RENAL_25 + CONTROLLED + med("a", "pregabalin", 100.0, "2026-09-01") + med("b", "pregabalin", 50.5, "2026-10-01")
    text = PREFIXES + PATIENT.format(birth="1960-01-15", sex="male", weight=70) + body
    patients = split_patients("case.ttl", rdflib.Graph().parse(data=text, format="turtle"))
    recommendation, validation = assess(patients, AS_OF, engine)
    messages = {f["id"]: f["message"] for f in validation["patients"][0]["findings"]}
    assert messages["dose-above-maximum"] == ("pregabalin 150.5 mg/day (the sum of 2 concurrent orders: a 100 mg/day + b 50.5 mg/day) "
                                              "is above the maximum of 150 mg/day for creatinine clearance band 15-29.")
    reduce = {a["id"]: a for a in recommendation["patients"][0]["actions"]}["reduce-to-renal-dose"]
    assert "150.5 mg/day (the sum of 2 concurrent orders: a 100 mg/day + b 50.5 mg/day)" in reduce["rationale"]


@pytest.mark.parametrize(("first", "second"), list(itertools.product((25, 75, 150, 450), (25, 75, 300))))
def test_one_drug_is_never_both_lowered_and_raised(engine, first, second):
    for renal in (RENAL_25, RENAL_80):
        _rec, findings, actions = _two(engine, med("a", "pregabalin", first, "2026-06-01"), med("b", "pregabalin", second, "2026-08-01"),
                                       renal=renal, pain=UNCONTROLLED)
        lowered = "reduce-to-renal-dose" in actions or "dose-above-maximum:violation" in findings
        raised = "titrate-pregabalin" in actions or "subtherapeutic-pregabalin:violation" in findings
        assert not (lowered and raised), (first, second, sorted(actions), sorted(findings))
