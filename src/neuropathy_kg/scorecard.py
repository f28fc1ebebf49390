"""The data-quality scorecard of a validate run (issue 18): every data check and pitfall with its
category, denominator, failing patients, pass rate, threshold and status, aggregated while patients
stream by, and compared with a previous run.

What each check is counted over (its population), its category and its threshold are data
(ontology/data-quality.ttl); which patients belong to which population is one SPARQL query
(queries/report/check-populations.rq) run in the worker on the chunk's store. This module only counts.

Memory is flat in the number of patients: the parent keeps counters and, per check, the findings of the
SAMPLE_SIZE smallest failing patient ids (smallest, so that the samples are the same whatever --jobs).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import rdflib
from rdflib.namespace import RDFS

from . import NKG, __version__, batch, guideline, pipeline
from .engine import local_name
from .load import Patient

#: Sample patients kept per check (with their findings of it) for the report's drill-down.
SAMPLE_SIZE = 5
#: The categories in the order the scorecard lists them (the first three: Kahn et al. 2016).
CATEGORY_ORDER = ("conformance", "completeness", "plausibility", "clinical")
FORMAT_VERSION = 1


class ScorecardError(Exception):
    """A thresholds or baseline file that cannot be used; its message is one line naming the file."""


@dataclass(frozen=True)
class Check:
    """One row of the scorecard: a data finding or pitfall of the catalogue, as data-quality.ttl places it."""

    id: str
    label: str
    kind: str  # Pitfall or DataFinding
    category: str
    severity: str
    population: str
    threshold: float


def _category_of(g: rdflib.Graph, iri: rdflib.URIRef, kind: str) -> rdflib.URIRef | None:
    return g.value(iri, NKG.dataQualityCategory) or g.value(NKG[kind], NKG.dataQualityCategory)


@cache
def checks() -> tuple[Check, ...]:
    """Every data-... and pitfall id of guideline.catalogue(), in scorecard order (category, id).
    Raises RuntimeError for a check that data-quality.ttl leaves without a category, population or
    threshold: the scorecard cannot place it."""
    g = guideline.ontology()
    found = []
    for entry in guideline.catalogue().values():
        if entry.kind not in ("Pitfall", "DataFinding"):
            continue
        iri = rdflib.URIRef(entry.iri)
        category = _category_of(g, iri, entry.kind)
        if category is None:
            raise RuntimeError(f"{entry.id}: no nkg:dataQualityCategory in ontology/data-quality.ttl")
        population = g.value(iri, NKG.appliesTo) or g.value(category, NKG.appliesTo)
        threshold = g.value(iri, NKG.acceptableFailingShare)
        if threshold is None:
            threshold = g.value(category, NKG.acceptableFailingShare)
        if population is None or threshold is None:
            raise RuntimeError(f"{entry.id}: no population or threshold in ontology/data-quality.ttl")
        found.append(Check(id=entry.id, label=entry.label, kind=entry.kind, category=str(g.value(category, RDFS.label)),
                           severity=entry.severity or "", population=local_name(population),
                           threshold=float(threshold.toPython())))
    unknown = {c.category for c in found} - set(CATEGORY_ORDER)
    if unknown:
        raise RuntimeError(f"unknown data-quality categories: {', '.join(sorted(unknown))}")
    return tuple(sorted(found, key=lambda c: (CATEGORY_ORDER.index(c.category), c.id)))


@cache
def populations() -> dict[str, str]:
    """Population id -> label."""
    g = guideline.ontology()
    return {local_name(p): str(g.value(p, RDFS.label)) for p in g.subjects(rdflib.RDF.type, NKG.CheckPopulation)}


# ---------------------------------------------------------------- in the worker

@dataclass(frozen=True, slots=True)
class Digest:
    """What the scorecard needs of one patient, made in the worker (a few small values, cheap to pickle)."""

    patient: str
    conforms: bool
    phenotype: str | None
    renal_band: str | None
    actions: tuple[str, ...]
    populations: tuple[str, ...]
    counts: tuple[tuple[str, int], ...]  # (finding id, findings) for each id the patient fails
    samples: tuple[tuple[str, tuple[dict, ...]], ...]  # (id, findings) where the patient is a sample candidate


def chunk_work(as_of: dt.date, engine: str, encode: bool) -> Callable[[list[Patient]], list[tuple[object, Digest]]]:
    """Per patient (its validate output, its Digest), from one derivation of the chunk (recommend's
    results and the compiled shapes read the same store, as pipeline.assess_chunk does). The output is
    the validate result, or with ``encode`` its (conforms, JSON line) pair as batch.as_json_lines makes it."""
    query = guideline.report_query("check-populations")

    def work(patients: list[Patient]) -> list[tuple[object, Digest]]:
        store = pipeline.derive(patients, as_of, engine)
        recommended = pipeline._recommend_chunk(store, patients)
        validated = pipeline._validate_chunk(store, patients)
        member: dict[str, list[str]] = defaultdict(list)
        for row in store.select_terms(query):
            member[row["patient"].text].append(row["population"].value)
        digests = _digests(patients, recommended, validated, member)
        outputs = batch.as_json_lines(lambda _chunk: validated)(patients) if encode else validated
        return list(zip(outputs, digests))

    return work


def _digests(patients: list[Patient], recommended: list[dict], validated: list[dict],
             member: dict[str, list[str]]) -> list[Digest]:
    failing: dict[str, list[tuple[str, int]]] = defaultdict(list)  # id -> (patient id, index in chunk)
    for index, result in enumerate(validated):
        for ident in {f["id"] for f in result["findings"]}:
            failing[ident].append((result["patient"], index))
    # Only the chunk's SAMPLE_SIZE smallest failing ids per check can be among the run's smallest.
    candidates: dict[int, list[str]] = defaultdict(list)
    for ident, rows in failing.items():
        for _pid, index in sorted(rows)[:SAMPLE_SIZE]:
            candidates[index].append(ident)
    digests = []
    for index, (patient, rec, val) in enumerate(zip(patients, recommended, validated)):
        counts = Counter(f["id"] for f in val["findings"])
        samples = tuple((ident, tuple(f for f in val["findings"] if f["id"] == ident))
                        for ident in sorted(candidates.get(index, ())))
        digests.append(Digest(
            patient=val["patient"], conforms=val["conforms"], phenotype=rec["phenotype"],
            renal_band=rec["facts"]["renalBand"], actions=tuple(a["id"] for a in rec["actions"]),
            populations=tuple(sorted(member.get(str(patient.iri), ()))), counts=tuple(sorted(counts.items())),
            samples=samples))
    return digests


# ---------------------------------------------------------------- in the parent

class Tally:
    """The counters of a run. ``add`` takes each chunk of (output, Digest) pairs as it arrives and gives
    back the outputs, for the per-patient output to go on as without a summary. ``merge`` adds another
    tally's counts: Spark reduces tallies of parts of the run with it (spark.py), and the result is the
    tally of all their digests added to one (tests/test_scorecard.py)."""

    #: The counters merge adds up (every Counter attribute below).
    COUNTERS = ("failing", "findings", "outside", "population", "phenotypes", "renal_bands", "actions")

    def __init__(self) -> None:
        self.patients = 0
        self.conforming = 0
        self.failing: Counter[str] = Counter()
        self.findings: Counter[str] = Counter()
        self.outside: Counter[str] = Counter()  # failing patients outside the check's population
        self.population: Counter[str] = Counter()
        self.phenotypes: Counter[str] = Counter()
        self.renal_bands: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.samples: dict[str, dict[str, tuple[dict, ...]]] = defaultdict(dict)
        self._population_of = {c.id: c.population for c in checks()}

    def add(self, chunk: list[tuple[object, Digest]]) -> list:
        outputs = []
        for output, digest in chunk:
            outputs.append(output)
            self.patients += 1
            self.conforming += digest.conforms
            self.phenotypes[digest.phenotype or "not recorded"] += 1
            self.renal_bands[digest.renal_band or "unknown"] += 1
            self.actions.update(set(digest.actions))
            self.population.update(digest.populations)
            for ident, count in digest.counts:
                self.failing[ident] += 1
                self.findings[ident] += count
                if self._population_of.get(ident) not in digest.populations:
                    self.outside[ident] += 1
            for ident, findings in digest.samples:
                kept = self.samples[ident]
                kept[digest.patient] = findings
                if len(kept) > SAMPLE_SIZE:
                    del kept[max(kept)]
        return outputs

    def merge(self, other: "Tally") -> "Tally":
        """This tally with ``other``'s counts added (``other`` is left as it was): the counters summed,
        and per check the SAMPLE_SIZE smallest failing patient ids of both kept, as ``add`` keeps them."""
        self.patients += other.patients
        self.conforming += other.conforming
        for name in self.COUNTERS:
            getattr(self, name).update(getattr(other, name))
        for ident, theirs in other.samples.items():
            kept = self.samples[ident]
            kept.update(theirs)
            for pid in sorted(kept)[SAMPLE_SIZE:]:
                del kept[pid]
        return self

    def summary(self, provenance: dict, thresholds: dict[str, float] | None = None) -> dict:
        """The summary document (docs/decisions.md, "Data-quality scorecard"). A check's applicable
        patients are its population's, plus any patient failing it outside that population (a finding
        shows the check applied), so that failing never exceeds applicable."""
        thresholds = thresholds or {}
        rows = []
        for check in checks():
            applicable = self.population[check.population] + self.outside[check.id]
            failing = self.failing[check.id]
            threshold = thresholds.get(check.id, check.threshold)
            if applicable:
                status = "fail" if failing / applicable > threshold else "pass"
                pass_rate = round(1 - failing / applicable, 6)
            else:
                status, pass_rate = "not-applicable", None
            kept = self.samples.get(check.id, {})
            rows.append({
                "id": check.id, "label": check.label, "category": check.category, "severity": check.severity,
                "population": check.population, "applicable": applicable, "failing": failing,
                "findings": self.findings[check.id], "passRate": pass_rate, "threshold": threshold, "status": status,
                "samplePatients": sorted(kept),
                "sampleFindings": {pid: list(kept[pid]) for pid in sorted(kept)},
            })
        known = {c.id for c in checks()}
        return {
            "scorecard": FORMAT_VERSION,
            "provenance": {**provenance, "tool": f"neuropathy-kg {__version__}"},
            "patients": self.patients,
            "conformingPatients": self.conforming,
            "failedPatients": provenance.get("failedPatients", 0),
            "failedInputs": provenance.get("failedInputs", 0),
            "categories": _categories(rows),
            "checks": rows,
            "uncataloguedFindings": dict(sorted((k, v) for k, v in self.findings.items() if k not in known)),
            "distributions": {
                "populations": {p: self.population[p] for p in sorted(populations())},
                "phenotypes": dict(sorted(self.phenotypes.items())),
                "renalBands": dict(sorted(self.renal_bands.items())),
                "actions": {a: self.actions[a] for a in sorted(
                    e.id for e in guideline.catalogue().values() if e.kind == "RecommendedAction")},
            },
        }


def _categories(rows: list[dict]) -> list[dict]:
    out = []
    for category in CATEGORY_ORDER:
        mine = [r for r in rows if r["category"] == category]
        out.append({"category": category, "checks": len(mine),
                    **{status: sum(r["status"] == status for r in mine) for status in ("pass", "fail", "not-applicable")}})
    return out


def provenance(paths: tuple[str, ...], as_of: dt.date, engine: str, run: dict) -> dict:
    iri, version = guideline.guideline_info()
    return {"guideline": iri, "guidelineVersion": version, "asOf": as_of.isoformat(), "engine": engine,
            "inputs": list(paths), "failedPatients": run["failedPatients"], "failedInputs": run["failedInputs"]}


# ---------------------------------------------------------------- thresholds and baseline files

def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ScorecardError(f"{path}: cannot read {what} ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ScorecardError(f"{path}: {what} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ScorecardError(f"{path}:{error.lineno}: {what} is not JSON ({error.msg})") from None


def read_thresholds(path: Path) -> dict[str, float]:
    """A thresholds file: a JSON object {check id: largest acceptable failing share, 0 to 1}."""
    data = _read_json(path, "thresholds file")
    if not isinstance(data, dict):
        raise ScorecardError(f"{path}: thresholds file must be a JSON object {{check id: share from 0 to 1}}")
    known = {c.id for c in checks()}
    for ident, share in data.items():
        if ident not in known:
            raise ScorecardError(f"{path}: {ident!r} is no data check or pitfall id of the catalogue")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ScorecardError(f"{path}: threshold of {ident} must be a number from 0 to 1, not {share!r}")
    return {ident: float(share) for ident, share in data.items()}


def read_baseline(path: Path) -> dict:
    """A previous run's summary (validate --summary), checked enough to compare with."""
    data = _read_json(path, "baseline summary")
    rows = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(rows, list) or data.get("scorecard") != FORMAT_VERSION:
        raise ScorecardError(f"{path}: not a summary written by validate --summary (no scorecard {FORMAT_VERSION} with checks)")
    for row in rows:
        if not (isinstance(row, dict) and isinstance(row.get("id"), str) and _count(row.get("failing"))
                and row.get("status") in ("pass", "fail", "not-applicable")
                and (row.get("passRate") is None or _number(row.get("passRate")))):
            raise ScorecardError(f"{path}: a check entry lacks id, failing, passRate or status: {str(row)[:80]}")
    return data


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(summary: dict, baseline: dict, path: str) -> dict:
    """The summary with each check's change since ``baseline``: failing before and now, the change of
    passRate, and the status change (new-failure, fixed, unchanged, new-check); summary["baseline"]
    lists the new failures, the fixed checks and the checks the baseline had that are gone."""
    before = {row["id"]: row for row in baseline["checks"]}
    new_failures, fixed = [], []
    for row in summary["checks"]:
        old = before.get(row["id"])
        if old is None:
            row["change"] = {"status": "new-check", "failingBefore": None, "failingDelta": None,
                             "passRateBefore": None, "passRateDelta": None, "statusBefore": None}
            if row["status"] == "fail":
                new_failures.append(row["id"])
            continue
        if row["status"] == "fail" and old["status"] != "fail":
            status = "new-failure"
            new_failures.append(row["id"])
        elif row["status"] != "fail" and old["status"] == "fail":
            status = "fixed"
            fixed.append(row["id"])
        else:
            status = "unchanged"
        delta = None
        if row["passRate"] is not None and old.get("passRate") is not None:
            delta = round(row["passRate"] - old["passRate"], 6)
        row["change"] = {"status": status, "failingBefore": old["failing"], "failingDelta": row["failing"] - old["failing"],
                         "passRateBefore": old.get("passRate"), "passRateDelta": delta, "statusBefore": old["status"]}
    previous = baseline.get("provenance") if isinstance(baseline.get("provenance"), dict) else {}
    summary["baseline"] = {
        "file": path, "asOf": previous.get("asOf"), "patients": baseline.get("patients"),
        "newFailures": new_failures, "fixed": fixed,
        "removedChecks": sorted(set(before) - {row["id"] for row in summary["checks"]}),
    }
    return summary


def write_json(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
