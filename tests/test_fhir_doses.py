"""Daily doses as the FHIR reader reads them (fhir-input.md "Doses"), from the adversarial review: doses
given at once are summed, timings in hours are exact, an amount that lost its unit is no tablet count."""

from __future__ import annotations

import pytest

from neuropathy_kg import fhir

PREGABALIN = "Pregabalin 150 MG Oral Capsule"


def dosage(value, unit="mg", *, frequency=1, period=1, period_unit="d", sequence=None) -> dict:
    quantity = {"value": value, **({"unit": unit} if unit is not None else {})}
    found = {"timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}},
             "doseAndRate": [{"doseQuantity": quantity}]}
    return {**found, "sequence": sequence} if sequence is not None else found


@pytest.mark.parametrize(("dosages", "amount"), [
    ([dosage(75), dosage(225)], 300),                                   # morning and night: 300 mg/day, not 75
    ([dosage(75, sequence=1), dosage(225, sequence=1)], 300),           # the same sequence: at once
    ([dosage(75, sequence=1), dosage(150, frequency=2, sequence=2)], 75),  # a titration's next step is not today's dose
    ([dosage(75), dosage(None)], None),                                  # one unreadable: no partial sum
    ([dosage(75), dosage(0.2, "g")], None),                              # units differ: no sum
    ([dosage(150, frequency=1, period=12, period_unit="h")], 300),       # exactly 300 (was 299.9999999999997)
    ([dosage(50, frequency=1, period=8, period_unit="h")], 150),
])
def test_concurrent_daily_dose(dosages, amount):
    got, unit = fhir.concurrent_daily_dose(dosages, "", fhir.vocabulary())
    assert got == amount and (unit == "mg" if amount is not None else unit is None)


def test_hours_are_exact_so_300_is_not_subtherapeutic():
    got, _unit = fhir.daily_dose(dosage(150, frequency=1, period=12, period_unit="h"), "", fhir.vocabulary())
    assert got == 300.0 and got >= 300  # the band's adequate-trial dose is 300: not below it


def test_a_unitless_amount_is_no_tablet_count():
    vocab = fhir.vocabulary()
    assert fhir.daily_dose(dosage(150, None, frequency=2), PREGABALIN, vocab) == (None, None)  # not 45,000 mg/day
    assert fhir.daily_dose(dosage(1, None, frequency=2), PREGABALIN, vocab) == (300.0, "mg")   # one capsule twice a day
