"""FHIR R4 JSON (Bundles of any type, lone resources, Bulk Data NDJSON) to the patient graph.

How codes map to concepts is data: ``ontology/mappings.ttl`` (SKOS matches, search terms, code systems);
how FHIR spells timings, units and statuses is ``fhir_conventions.json``. This module only walks the
resources (see ../shared/spec/fhir-input.md and docs/fhir.md). Unknown resources and codes are skipped;
a value a rule needs but cannot read is written as it is, so that the shapes report it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Iterator
from urllib.parse import quote

import orjson
import rdflib
from rdflib import RDF, XSD, URIRef
from rdflib.namespace import SKOS

from . import NKG, BoundedCache, guideline
from .model import InputError, Patient, canonical_decimal, canonical_integer, one_line
from .ndjson import (REFERENCED_RESOURCE_TYPES, EntrySource, PatientDirectory, ResourceSource, contested, counted_copy, line_key,
                     medication_key, ndjson_lines, parse_json, parse_json_exact, position, reference_target,
                     referenced_id, spooled_line)
from .ndjson import resource_of_line as ndjson_resource

__all__ = ["ndjson_lines", "ndjson_resource", "parse_json", "spooled_line", "to_patients", "to_graph", "vocabulary",
           "document_resources", "export_lines"]

UCUM = "http://unitsofmeasure.org"
BASE = "urn:neuropathy-kg:fhir:"
CONDITION_CLASSES = (NKG.DiabeticNeuropathyDiagnosis, NKG.Comorbidity, NKG.ObservationKind)
OBSERVATION_CLASSES = (NKG.ObservationKind, NKG.ProcedureKind)
PROCEDURE_CLASSES = (NKG.ProcedureKind,)
DRUG_CLASSES = (NKG.Drug,)
MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")
#: The resource types read as one coded record each: the element whose code decides, and the kinds of
#: concept it may mean. A resource of these whose code means no such concept is skipped (the converter's
#: handlers and may_be_read both look it up here).
CODED_TYPES = {
    "Condition": ("code", CONDITION_CLASSES),
    "Observation": ("code", OBSERVATION_CLASSES),
    "Procedure": ("code", PROCEDURE_CLASSES),
    "AllergyIntolerance": ("code", DRUG_CLASSES),
}
#: The elements may_be_read looks at: a reader of raw JSON decodes only these to decide (service.py);
#: the code elements may stay JSON text (bytes).
HEAD_FIELDS = ("resourceType", "id", "code", "clinicalStatus", "verificationStatus")
CODE_ELEMENTS = frozenset(element for element, _allowed in CODED_TYPES.values())


@dataclass(frozen=True)
class Vocabulary:
    """The ontology's code tables, indexed for reading FHIR."""

    systems: dict[str, tuple[str, bool]]
    by_iri: dict[str, URIRef]
    labels: list[tuple[re.Pattern, str, URIRef]]
    any_label: re.Pattern
    classes: dict[URIRef, frozenset[URIRef]]
    value_concepts: frozenset[URIRef]
    ivig_gap_days: int
    ivig_days: int
    conventions: dict
    unit_of: dict[str, str]
    #: FHIR systems whose codings are decided by their code alone (every known one but RxNorm, whose
    #: clinical-drug codes the mappings do not list: its words are read beside its codes).
    decided_by_code: frozenset[str] = frozenset()
    #: concept -> words of which text must hold one before the concept is recognised by words (nkg:textMatchRequires).
    required_words: dict[URIRef, tuple[re.Pattern, ...]] = field(default_factory=dict)
    #: concept -> words that, just before a required word, negate it ("not diabetic"; nkg:textMatchNegatedBy).
    negations: dict[URIRef, re.Pattern] = field(default_factory=dict)
    #: concept -> the words of the concepts whose words anywhere in a text exclude it (nkg:textMatchExcludedBy).
    excluded_by: dict[URIRef, re.Pattern] = field(default_factory=dict)


@cache
def vocabulary() -> Vocabulary:
    g = guideline.ontology()
    systems = {
        str(g.value(s, NKG.fhirSystem)): (str(g.value(s, NKG.iriPrefix)), bool(g.value(s, NKG.hierarchicalCodes).toPython()))
        for s in g.subjects(RDF.type, NKG.CodeSystem)
    }
    by_iri: dict[str, URIRef] = {}
    for prop in (SKOS.exactMatch, SKOS.closeMatch):
        for concept, code in g.subject_objects(prop):
            by_iri.setdefault(str(code), concept)
    labels = sorted(
        ((str(label).lower(), concept) for concept, label in g.subject_objects(SKOS.hiddenLabel)),
        key=lambda item: (-len(item[0]), item[0]),
    )
    compiled = [(re.compile(rf"(?<![a-z0-9]){re.escape(text)}(?![a-z0-9])"), text, concept) for text, concept in labels]
    any_label = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _text, _concept in compiled))
    classes: dict[URIRef, frozenset[URIRef]] = {}
    for concept in set(g.subjects(RDF.type, None)):
        direct = set(g.objects(concept, RDF.type))
        closure = set(direct)
        for cls in direct:
            closure |= set(g.transitive_objects(cls, rdflib.RDFS.subClassOf))
        classes[concept] = frozenset(closure)
    decided_by_code = frozenset(
        str(g.value(s, NKG.fhirSystem)) for s in g.subjects(RDF.type, NKG.CodeSystem)
        if not (g.value(s, NKG.wordsReadBesideCodes) is not None and g.value(s, NKG.wordsReadBesideCodes).toPython()))
    # A required word counts only as a word of its own, not after "non" ("non-diabetic", "nondiabetic").
    required_words = {
        concept: tuple(re.compile(rf"(?<![a-z0-9-]){re.escape(str(w).lower())}(?![a-z0-9])") for cls in closure
                       for w in g.objects(cls, NKG.textMatchRequires))
        for concept, closure in classes.items()
        if any(True for cls in closure for _w in g.objects(cls, NKG.textMatchRequires))
    }
    # A negation word counts where it ends just before the required word, apart from it by spaces or a hyphen.
    negations = {}
    for concept, closure in classes.items():
        words = sorted({str(w).lower() for cls in closure for w in g.objects(cls, NKG.textMatchNegatedBy)})
        if words:
            negations[concept] = re.compile(rf"(?<![a-z0-9])(?:{'|'.join(map(re.escape, words))})[\s-]*$")
    excluded_by = {}
    for concept in set(g.subjects(NKG.textMatchExcludedBy, None)):
        words = [pattern.pattern for pattern, _text, other in compiled if other in set(g.objects(concept, NKG.textMatchExcludedBy))]
        if words:
            excluded_by[concept] = re.compile("|".join(f"(?:{w})" for w in words))
    conventions = json.loads((resources.files(__package__) / "fhir_conventions.json").read_text(encoding="utf-8"))
    unit_of = {spelling.lower(): ucum for ucum, spellings in conventions["unit_synonyms"].items() for spelling in spellings}
    return Vocabulary(
        systems=systems, by_iri=by_iri, labels=compiled, any_label=any_label, classes=classes,
        value_concepts=frozenset(g.subjects(RDF.type, NKG.ObservationValueConcept)),
        ivig_gap_days=int(g.value(NKG["dose-ivig"], NKG.courseMaxGapDays)),
        ivig_days=int(g.value(NKG["dose-ivig"], NKG.days)),
        conventions=conventions, unit_of=unit_of, decided_by_code=decided_by_code, required_words=required_words,
        negations=negations, excluded_by=excluded_by,
    )


# ---------------------------------------------------------------- N-Triples terms
# The reader writes N-Triples text itself: building rdflib graphs cost more than everything else in a
# population run (bench/README.md). Terms are strings in N-Triples syntax; IRIs are made by the reader
# (percent-encoded ids) or come from the ontology, so only literals need escaping.

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})
# Looked up once: rdflib's namespace attributes build a new URIRef on every access (about 1 us each).
RDF_TYPE = RDF.type
SUBJECT = NKG.subject
#: Resource ids made only of these characters go into IRIs as they are (FHIR ids: [A-Za-z0-9.-]); others
#: are percent-encoded.
IRI_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
XSD_DATE, XSD_INTEGER, XSD_DECIMAL, XSD_BOOLEAN = XSD.date, XSD.integer, XSD.decimal, XSD.boolean
TRUE = f'"true"^^<{XSD_BOOLEAN}>'


def _iri(value: str) -> str:
    return f"<{value}>"


def _string(text: str) -> str:
    return f'"{text.translate(_ESCAPES)}"'


def _typed(lexical: str, datatype: URIRef) -> str:
    return f'"{lexical}"^^<{datatype}>'


# ---------------------------------------------------------------- small readers

def _date_value(value) -> dt.date | None:
    """The date part of a FHIR date or dateTime, or None where there is no valid one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def fhir_date(value) -> str | None:
    """A FHIR date or dateTime as an xsd:date term (the date part as written); an invalid one as a plain
    string of its date part (the shapes report it), a partial date (2026-02) as it is."""
    if not isinstance(value, str) or not value:
        return None
    day = _date_value(value)
    return _typed(day.isoformat(), XSD_DATE) if day is not None else _string(value.split("T", 1)[0])


def _number(value) -> str | None:
    """A JSON number as an xsd:integer or xsd:decimal term; anything else (text, NaN, Infinity) as a plain
    string, which is no number to any rule and which the shapes report (data-malformed-value)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        lexical = canonical_integer(value)
        return _typed(lexical, XSD_INTEGER) if lexical is not None else _string(str(value))
    if isinstance(value, float) and math.isfinite(value):
        lexical = canonical_decimal(Decimal(repr(value)))
        return _typed(lexical, XSD_DECIMAL) if lexical is not None else _string(repr(value))
    return _string(str(value))


def unit_of(quantity: dict, vocab: Vocabulary) -> str:
    """The UCUM code of a Quantity: its code where the system is UCUM, else its unit text, normalised."""
    raw = quantity.get("code") if quantity.get("system") == UCUM and quantity.get("code") else quantity.get("unit") or quantity.get("code") or ""
    return vocab.unit_of.get(str(raw).strip().lower(), str(raw).strip())


def _codings(concept: dict | None) -> list[dict]:
    return [c for c in (concept or {}).get("coding", []) if isinstance(c, dict)]


def _texts(concept: dict | None) -> Iterator[str]:
    for coding in _codings(concept):
        if coding.get("display"):
            yield str(coding["display"])
    if (concept or {}).get("text"):
        yield str(concept["text"])


def _code(concept: dict | None) -> str | None:
    codings = _codings(concept)
    return str(codings[0].get("code")) if codings and codings[0].get("code") else None


def _concept_key(concept) -> bytes | str:
    """A CodeableConcept as a cache key: its JSON (orjson, compact), or its repr where orjson cannot write it."""
    try:
        return orjson.dumps(concept)
    except TypeError:  # an integer over 64 bits, which the standard library's parser accepts
        return repr(concept)


def concept_of(concept: dict | bytes | None, allowed: tuple[URIRef, ...], vocab: Vocabulary) -> URIRef | None:
    """The ontology concept a CodeableConcept means: by code (exact, then hierarchical ancestors), then by text.
    Exports repeat the same codings thousands of times, so answers are remembered per distinct concept.
    ``concept`` may be the CodeableConcept's JSON text (bytes), as a reader of raw JSON holds it: the
    text is then the key, and it is parsed only the first time it is met."""
    key = (concept if isinstance(concept, bytes) else _concept_key(concept), allowed)
    if key in _RECOGNISED:  # None (not recognised) is remembered too
        return _RECOGNISED[key]
    if isinstance(concept, bytes):
        concept = parse_json(concept)
    return _RECOGNISED.remember(key, _recognise(concept, allowed, vocab))


_RECOGNISED = BoundedCache(20_000)


def _recognise(concept: dict | None, allowed: tuple[URIRef, ...], vocab: Vocabulary) -> URIRef | None:
    def fits(candidate: URIRef) -> bool:
        return any(cls in vocab.classes.get(candidate, ()) for cls in allowed)

    ancestors = []
    decided = False  # a coding in a system decided by code: its code alone says what the concept is
    for coding in _codings(concept):
        system, code = coding.get("system"), coding.get("code")
        if not system or not code or system not in vocab.systems:
            continue
        decided = decided or system in vocab.decided_by_code
        prefix, hierarchical = vocab.systems[system]
        code = str(code).strip()
        direct = URIRef(prefix + code)
        found = vocab.by_iri.get(str(direct)) or (direct if direct in vocab.classes else None)
        if found is not None and fits(found):
            return found
        if hierarchical:
            for end in range(len(code) - 1, 0, -1):
                shorter = code[:end].rstrip(".")
                hit = vocab.by_iri.get(prefix + shorter)
                if hit is not None and fits(hit):
                    ancestors.append((end, hit))
                    break
    if ancestors:
        return max(ancestors, key=lambda item: item[0])[1]
    if decided:  # fhir-input.md: a CIDP code whose display says "polyneuropathy" is no diabetic polyneuropathy
        return None
    text = " | ".join(_texts(concept)).lower()
    if text and vocab.any_label.search(text):
        for pattern, _label, candidate in vocab.labels:  # the longest words first
            if fits(candidate) and pattern.search(text):
                excluding = vocab.excluded_by.get(candidate)
                if excluding is not None and excluding.search(text):
                    continue  # "Rho(D) immune globulin intravenous": the hyperimmune words exclude IVIG's
                # A neuropathy found by words is in scope only when the words say diabetic (fhir-input.md),
                # not where they say the opposite ("not diabetic", "without diabetes").
                required = vocab.required_words.get(candidate)
                if required is None or _says_one(text, required, vocab.negations.get(candidate)):
                    return candidate
    return None


def _says_one(text: str, words: tuple[re.Pattern, ...], negation: re.Pattern | None) -> bool:
    """The text holds one of the words, not just after a negation word."""
    return any(negation is None or not negation.search(text, 0, match.start())
               for word in words for match in word.finditer(text))


# ---------------------------------------------------------------- the converter

@dataclass
class _Converter:
    name: str
    vocab: Vocabulary
    lines: dict[URIRef, dict[str, None]] = field(default_factory=dict)  # patient -> its N-Triples, unique, in order
    ids: dict[URIRef, str] = field(default_factory=dict)  # patient IRI -> patient id
    iri_of: dict[str, URIRef] = field(default_factory=dict)  # patient id -> patient IRI
    owner: dict[URIRef, URIRef] = field(default_factory=dict)  # record or patient IRI -> patient IRI
    problems: list[InputError] = field(default_factory=list)
    by_url: dict[str, dict] = field(default_factory=dict)
    directory: PatientDirectory = field(default_factory=PatientDirectory)
    where: str = ""  # the resource being converted (file:line, or the file), for the problems it causes
    # patient -> resource identity (type/id) -> its infusion days: a resource given twice counts once
    infusions: dict[str, dict[str, list[tuple[dt.date, float | None, str]]]] = field(default_factory=lambda: defaultdict(dict))

    # --- identity (the resolution itself is ndjson.PatientDirectory, shared with the spooler)
    def index(self, resources: list[dict]) -> None:
        """The resources a medicationReference may name, by TYPE/ID (a Bundle's references by full URL
        were resolved to that form by document_resources)."""
        for resource in resources:
            kind, ident = resource.get("resourceType"), resource.get("id")
            if kind and ident:
                self.by_url[f"{kind}/{ident}"] = resource

    def patient_iri(self, pid: str) -> URIRef:
        iri = self.iri_of.get(pid)
        if iri is None:
            iri = self.iri_of[pid] = URIRef(f"{BASE}Patient/{quote(pid, safe='')}")
        if iri not in self.lines:
            self.lines[iri] = {}
            self.ids[iri] = pid
            self.owner[iri] = iri
            self.add(iri, RDF_TYPE, _iri(NKG.Patient))
            self.add(iri, NKG.patientId, _string(pid))
        return iri

    @staticmethod
    def identity(resource: dict) -> str:
        """A resource's identity within its patient: type/id (percent-encoded where needed), or type/a
        digest of its content where it has no id (the same content twice is then one resource)."""
        ident = resource.get("id")
        if ident is None or ident == "":
            ident = hashlib.sha1(json.dumps(resource, sort_keys=True, default=str).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        ident = str(ident)
        if not IRI_SAFE.fullmatch(ident):
            ident = quote(ident, safe="")
        return f"{resource.get('resourceType')}/{ident}"

    def record(self, resource: dict, cls: URIRef, patient: URIRef, suffix: str = "") -> str:
        """A record's IRI, under its patient's (so that two patients' Observation/1 never meet; the same
        resource twice for one patient is one record), typed and linked to its patient. A plain string: no
        rdflib term is needed, and making one validates it."""
        iri = f"{patient}/{self.identity(resource)}{suffix}"
        self.owner[iri] = patient
        lines = self.lines[patient]
        lines[f"<{iri}> <{RDF_TYPE}> <{cls}> .\n"] = None
        lines[f"<{iri}> <{SUBJECT}> <{patient}> .\n"] = None
        return iri

    def add(self, subject: str, predicate: str, term: str | None) -> None:
        """One triple in the owning patient's data; ``term`` is an N-Triples term (None: nothing to say)."""
        if term is not None:
            self.lines[self.owner[subject]][f"<{subject}> <{predicate}> {term} .\n"] = None

    # --- resources
    def convert(self, resource: dict) -> None:
        kind = resource.get("resourceType")
        if kind not in self.vocab.conventions["read_resource_types"]:
            return
        handler = getattr(self, f"_{kind}", None)
        if handler is None:  # Medication: read through the references of the medication resources
            return
        if str(resource.get("status", "")).lower() in self.vocab.conventions["skip_statuses"]:
            return
        handler(resource)

    def _owner(self, resource: dict) -> URIRef | None:
        """The patient a resource belongs to (ndjson.line_key resolved by the directory), or None, reported."""
        pid, why = self.directory.resolve(line_key(resource))
        if pid is None:
            self.problems.append(InputError(self.where, f"{resource.get('resourceType')}/{resource.get('id', '?')} {why}: skipped"))
            return None
        return self.patient_iri(pid)

    def _coded_record(self, resource: dict, cls: URIRef, predicate: URIRef = NKG.code) -> URIRef | None:
        """The record of a resource whose code means a concept of the kinds its type allows (CODED_TYPES),
        else None (skipped)."""
        field_name, allowed = CODED_TYPES[resource["resourceType"]]
        concept = concept_of(resource.get(field_name), allowed, self.vocab)
        patient = self._owner(resource)
        if concept is None or patient is None:
            return None
        iri = self.record(resource, cls, patient)
        self.add(iri, predicate, _iri(concept))
        return iri

    def _Patient(self, resource: dict) -> None:
        target = line_key(resource)
        if target is None:
            self.problems.append(InputError(self.where, "Patient without an id: skipped"))
            return
        iri = self.patient_iri(target.value)
        self.add(iri, NKG.birthDate, fhir_date(resource.get("birthDate")))
        if resource.get("gender"):
            self.add(iri, NKG.sex, _string(str(resource["gender"])))
        if resource.get("deceasedBoolean") is True or resource.get("deceasedDateTime"):
            self.add(iri, NKG.deceased, TRUE)

    def _Condition(self, resource: dict) -> None:
        verification = _code(resource.get("verificationStatus"))
        if verification in self.vocab.conventions["skip_statuses"]:
            return
        iri = self._coded_record(resource, NKG.ConditionRecord)
        if iri is None:
            return
        status = _code(resource.get("clinicalStatus"))
        self.add(iri, NKG.clinicalStatus, _string(status) if status else None)
        # onset[x] dates the disease, recordedDate the record (fhir-input.md, second edition): kept apart, so
        # that a relapse is never dated by the neuropathy's original onset (queries/facts/08-relapse.ru).
        self.add(iri, NKG.recordedDate, fhir_date(resource.get("recordedDate")))
        onset = resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")
        self.add(iri, NKG.onsetDate, fhir_date(onset))

    def _Observation(self, resource: dict) -> None:
        iri = self._coded_record(resource, NKG.ObservationRecord)
        if iri is None:
            return
        effective = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start") or resource.get("issued")
        self.add(iri, NKG.date, fhir_date(effective))
        if "valueQuantity" in resource:
            quantity = resource["valueQuantity"] or {}
            self.add(iri, NKG.value, _number(quantity.get("value")))
            unit = unit_of(quantity, self.vocab)
            if unit:
                self.add(iri, NKG.unit, _string(unit))
        elif "valueBoolean" in resource:
            self.add(iri, NKG.value, _typed("true" if resource["valueBoolean"] else "false", XSD_BOOLEAN))
        elif "valueInteger" in resource:
            self.add(iri, NKG.value, _number(resource["valueInteger"]))
        elif "valueCodeableConcept" in resource:
            value = concept_of(resource["valueCodeableConcept"], (NKG.ObservationValueConcept,), self.vocab)
            if value is not None:
                self.add(iri, NKG.valueConcept, _iri(value))

    def _Procedure(self, resource: dict) -> None:
        iri = self._coded_record(resource, NKG.ProcedureRecord)
        if iri is None:
            return
        performed = resource.get("performedDateTime") or (resource.get("performedPeriod") or {}).get("start")
        self.add(iri, NKG.date, fhir_date(performed))

    def _AllergyIntolerance(self, resource: dict) -> None:
        if _code(resource.get("verificationStatus")) in self.vocab.conventions["skip_statuses"]:
            return
        if _code(resource.get("clinicalStatus")) in ("inactive", "resolved"):
            return
        self._coded_record(resource, NKG.IntoleranceRecord, predicate=NKG.substance)

    # --- medications
    def _medication_concept(self, resource: dict) -> tuple[URIRef | None, str]:
        """The drug and the text its strength may be read from (the code's display, the Medication's)."""
        codeable = resource.get("medicationCodeableConcept")
        if codeable is None and isinstance(resource.get("medicationReference"), dict):
            ref = resource["medicationReference"].get("reference", "")
            medication = None
            if ref.startswith("#"):
                medication = next((c for c in resource.get("contained", []) if c.get("id") == ref[1:]), None)
            else:  # as it is written, else as the spooler keyed it (versioned, absolute: ndjson.medication_key)
                key = medication_key(resource)
                medication = self.by_url.get(ref) or (self.by_url.get(key) if key else None)
            if medication is not None and not isinstance(medication, dict):
                medication = None
            if medication is not None:
                codeable = medication.get("code")
                drug = concept_of(codeable, DRUG_CLASSES, self.vocab)
                if drug is None:
                    for ingredient in medication.get("ingredient", []):
                        drug = concept_of(ingredient.get("itemCodeableConcept"), DRUG_CLASSES, self.vocab)
                        if drug is not None:
                            break
                return drug, " ".join(_texts(codeable))
        return concept_of(codeable, DRUG_CLASSES, self.vocab), " ".join(_texts(codeable))

    def _MedicationRequest(self, resource: dict) -> None:
        self._medication(resource, resource.get("dosageInstruction"))

    def _MedicationStatement(self, resource: dict) -> None:
        self._medication(resource, resource.get("dosage"))

    def _MedicationAdministration(self, resource: dict) -> None:
        self._medication(resource, resource.get("dosage"))

    def _medication(self, resource: dict, dosages: dict | list | None) -> None:
        """A medication resource; ``dosages``: its Dosage (an administration) or its list of Dosages (a
        request or statement: those given at once are summed, see daily_dose)."""
        concurrent = dosages if isinstance(dosages, list) else [dosages] if dosages is not None else []
        dosage = concurrent[0] if concurrent and isinstance(concurrent[0], dict) else None
        drug, text = self._medication_concept(resource)
        patient = self._owner(resource)
        if drug is None or patient is None:
            return
        kind = resource["resourceType"]
        if NKG.OtherImmuneGlobulin in self.vocab.classes.get(drug, ()):
            # Only intravenous immune globulin is IVIG (fhir-input.md): immune globulin named without a route
            # is IVIG where the words or the dosage route say intravenous; hyperimmune, subcutaneous and
            # intramuscular immune globulin are not, and no rule reads them.
            if drug != NKG["immune-globulin-route-unstated"] or not self._intravenous(text, dosage):
                return
            drug = NKG.ivig
        if NKG.ImmuneGlobulin in self.vocab.classes.get(drug, ()):
            self._ivig(resource, dosage, text, patient)
            return
        iri = self.record(resource, NKG.MedicationUse, patient)
        self.add(iri, NKG.drug, _iri(drug))
        if kind == "MedicationAdministration":
            amount, unit = daily_dose(dosage, text, self.vocab, per_administration=True)
        else:
            amount, unit = concurrent_daily_dose(concurrent, text, self.vocab)
        if amount is not None:
            self.add(iri, NKG.dailyDose, _number(amount))
            self.add(iri, NKG.unit, _string(unit) if unit else None)
        start, end = _period_of(resource, dosage)
        self.add(iri, NKG.startDate, fhir_date(start))
        self.add(iri, NKG.endDate, fhir_date(end))
        status = "completed" if kind == "MedicationAdministration" else str(resource.get("status", ""))
        self.add(iri, NKG.status, _string(status) if status else None)
        if kind == "MedicationRequest":
            self.add(iri, NKG.replaces, self._prior_prescription(resource, patient))

    def _prior_prescription(self, resource: dict, patient: URIRef) -> str | None:
        """The record of the patient's order that ``priorPrescription`` says this request replaces: a
        reference ``MedicationRequest/ID`` (relative, versioned or absolute), or a logical reference by
        the record's IRI (as `recommend --format fhir` and the CDS suggestions write it). Another
        patient's record, or anything else, replaces nothing. Read as nkg:replaces; what replacing means
        for the daily dose is a rule (queries/facts/09-medications.ru)."""
        prior = resource.get("priorPrescription")
        if not isinstance(prior, dict):
            return None
        reference = prior.get("reference")
        if isinstance(reference, str) and reference:
            order_id = referenced_id(reference, "MedicationRequest")
            if order_id is None:
                return None
            return _iri(f"{patient}/{self.identity({'resourceType': 'MedicationRequest', 'id': order_id})}")
        identifier = prior.get("identifier")
        value = identifier.get("value") if isinstance(identifier, dict) else None
        if isinstance(value, str) and value.startswith(f"{patient}/MedicationRequest/") and re.fullmatch(r"[A-Za-z0-9._~%-]+", value.rsplit("/", 1)[-1]):
            return _iri(value)
        return None

    def _intravenous(self, text: str, dosage: dict | None) -> bool:
        """The drug's words or the dosage's route say intravenous (fhir_conventions.json: intravenous_route)."""
        route = self.vocab.conventions["intravenous_route"]
        given = (dosage or {}).get("route") if isinstance(dosage, dict) else None
        given = given if isinstance(given, dict) else None
        words = " ".join([text or ""] + list(_texts(given))).lower()
        if any(re.search(rf"(?<![a-z0-9]){re.escape(w)}(?![a-z0-9])", words) for w in route["words"]):
            return True
        return any(str(c.get("code", "")) in route["codes"] for c in _codings(given))

    def _ivig(self, resource: dict, dosage: dict | None, text: str, patient: URIRef) -> None:
        kind = resource["resourceType"]
        amount, unit = daily_dose(dosage, text, self.vocab, per_administration=(kind == "MedicationAdministration"))
        grams = _grams(amount, unit)
        if kind == "MedicationAdministration":
            start, end = _period_of(resource, dosage)
            first, last = _date_value(start), _date_value(end) or _date_value(start)
            if first is None:
                return
            span = ((last or first) - first).days + 1
            if not 0 < span <= self.vocab.conventions["max_administration_days"]:  # never expanded without bound
                self.problems.append(InputError(self.where, f"{self.identity(resource)}: an administration period of {span} days is not plausible: skipped"))
                return
            self.infusions[str(patient)][self.identity(resource)] = [(first + dt.timedelta(days=offset), grams, unit or "") for offset in range(span)]
            return
        conventions = self.vocab.conventions
        planned = (kind == "MedicationRequest" and resource.get("intent") in conventions["planned_request_intents"]
                   and resource.get("status") in conventions["planned_request_statuses"])
        given = kind == "MedicationStatement" and resource.get("status") == "completed"
        # A completed request is a given course over its bounds, unless administrations cover its days
        # (fhir-input.md, second edition): marked here, decided in queries/facts/01c-completed-ivig-requests.ru.
        completed_request = kind == "MedicationRequest" and resource.get("status") == "completed"
        if not (planned or given or completed_request):
            return
        bounds = ((dosage or {}).get("timing") or {}).get("repeat", {}).get("boundsPeriod") or resource.get("effectivePeriod") or {}
        first = _date_value(bounds.get("start") or resource.get("authoredOn") or resource.get("effectiveDateTime"))
        if first is None:
            return
        last = _date_value(bounds.get("end")) or first + dt.timedelta(days=self.vocab.ivig_days - 1)
        iri = self.record(resource, NKG.IvigCourse, patient)
        self._course(iri, first, last, (last - first).days + 1, grams, unit, "planned" if planned else "given")
        if completed_request and not planned:
            self.add(iri, NKG.fromCompletedRequest, TRUE)

    def _course(self, iri: URIRef, first: dt.date, last: dt.date, days: int, grams, unit, status: str) -> None:
        self.add(iri, NKG.status, _string(status))
        self.add(iri, NKG.startDate, _typed(first.isoformat(), XSD_DATE))
        self.add(iri, NKG.endDate, _typed(last.isoformat(), XSD_DATE))
        self.add(iri, NKG.infusionDays, _typed(str(days), XSD_INTEGER))
        if grams is not None:
            self.add(iri, NKG.dailyDose, _number(round(grams, 3)))
            self.add(iri, NKG.unit, _string("g"))
        elif unit:
            self.add(iri, NKG.unit, _string(unit))

    def finish(self) -> None:
        """Group each patient's IVIG infusion days into courses (gaps of at most the ontology's gap)."""
        for patient, by_resource in self.infusions.items():
            days = [day for resource_days in by_resource.values() for day in resource_days]
            per_day: dict[dt.date, list[float | None]] = defaultdict(list)
            units = {unit for _day, _grams, unit in days}
            for day, grams, _unit in days:
                per_day[day].append(grams)
            ordered = sorted(per_day)
            courses, current = [], [ordered[0]]
            for day in ordered[1:]:
                if (day - current[-1]).days - 1 <= self.vocab.ivig_gap_days:
                    current.append(day)
                else:
                    courses.append(current)
                    current = [day]
            courses.append(current)
            for course in courses:
                totals = [sum(g for g in per_day[d] if g is not None) if all(g is not None for g in per_day[d]) else None for d in course]
                known = [t for t in totals if t is not None]
                grams = sum(known) / len(known) if known and len(known) == len(totals) else None
                iri = URIRef(f"{patient}/ivig-course/{course[0].isoformat()}")
                self.owner[iri] = URIRef(patient)
                self.add(iri, RDF_TYPE, _iri(NKG.IvigCourse))
                self.add(iri, NKG.subject, _iri(patient))
                self._course(iri, course[0], course[-1], len(course), grams, min(units - {"g", ""}, default=None), "given")


def _period_of(resource: dict, dosage: dict | None) -> tuple[str | None, str | None]:
    bounds = ((dosage or {}).get("timing") or {}).get("repeat", {}).get("boundsPeriod") or {}
    period = resource.get("effectivePeriod") or {}
    start = bounds.get("start") or period.get("start") or resource.get("effectiveDateTime") or resource.get("authoredOn")
    end = bounds.get("end") or period.get("end")
    if resource.get("resourceType") == "MedicationAdministration" and resource.get("effectiveDateTime"):
        end = resource["effectiveDateTime"]
    return start, end


def _grams(amount: float | None, unit: str | None) -> float | None:
    if amount is None:
        return None
    if unit == "g":
        return amount
    if unit == "mg":
        return amount / 1000
    return None


STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(MG|G|MCG|UG)\b(?!\s*/)", re.IGNORECASE)


def concurrent_daily_dose(dosages: list, drug_text: str, vocab: Vocabulary) -> tuple[float | None, str | None]:
    """The daily dose of a request's or statement's Dosages: those taken at the same time (the first one's
    ``sequence``, or all where none is numbered: 75 mg in the morning and 225 mg at night) are summed;
    later sequences (a titration's next steps) are not the current dose. (None, None) where one of them
    cannot be read or their units differ: no partial sum is ever taken for the dose."""
    current = [d for d in dosages if isinstance(d, dict)]
    if not current:
        return None, None
    first = current[0].get("sequence")
    current = [d for d in current if d.get("sequence") == first]
    read = [daily_dose(d, drug_text, vocab) for d in current]
    if any(amount is None for amount, _unit in read) or len({unit for _amount, unit in read}) != 1:
        return (None, None) if len(read) > 1 else read[0]
    return sum(amount for amount, _unit in read), read[0][1]


def daily_dose(dosage: dict | None, drug_text: str, vocab: Vocabulary, per_administration: bool = False) -> tuple[float | None, str | None]:
    """(amount per day, UCUM unit) from a Dosage: dose x frequency / period, or a timing code; a tablet
    count is multiplied by the strength in the drug's name. (None, None) where it cannot be told."""
    if not dosage:
        return None, None
    quantity = dosage.get("dose") if per_administration else None
    if quantity is None:
        rates = dosage.get("doseAndRate") or [{}]
        quantity = (rates[0] or {}).get("doseQuantity")
    if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), (int, float)) or isinstance(quantity.get("value"), bool):
        return None, None
    amount, unit = float(quantity["value"]), unit_of(quantity, vocab)
    if not unit and amount > vocab.conventions["unitless_count_max"]:
        return None, None  # an amount that lost its unit, not a count of tablets (fhir_conventions.json)
    if unit.lower() in vocab.conventions["count_units"]:
        strength = STRENGTH.search(drug_text or "")
        if strength is None:
            return None, None
        amount *= float(strength.group(1))
        unit = vocab.unit_of.get(strength.group(2).lower(), strength.group(2).lower())
    if per_administration:
        return amount, unit
    per_day = _times_per_day(dosage.get("timing") or {}, vocab)
    if per_day is None:
        return None, None
    return float(Fraction(amount) * per_day), unit


def _times_per_day(timing: dict, vocab: Vocabulary) -> Fraction | None:
    """Administrations a day, exactly (fractions: every 12 h is 2, not 1.9999999999999998)."""
    repeat = timing.get("repeat") or {}
    if "frequency" in repeat or "period" in repeat:
        frequency = repeat.get("frequencyMax") or repeat.get("frequency") or 1
        period = repeat.get("period") or 1
        days = vocab.conventions["period_unit_days"].get(repeat.get("periodUnit", "d"))
        if days is None or not period or not isinstance(frequency, (int, float)) or not isinstance(period, (int, float)):
            return None
        return Fraction(frequency) / (Fraction(period) * Fraction(days))
    code = _code(timing.get("code"))
    if code:
        per_day = vocab.conventions["timing_codes_per_day"].get(code.upper())
        return Fraction(per_day).limit_denominator(1000) if per_day is not None else None
    return None


# ---------------------------------------------------------------- what the reader reads

def may_be_read(resource: dict) -> bool:
    """Whether the converter could take anything from a resource, decided from its HEAD_FIELDS alone (the
    code element may be its JSON text, bytes): False for a resource type it does not read
    (fhir_conventions.json ``read_resource_types``) and for a coded record whose code means no concept of
    its kinds (CODED_TYPES), which the converter skips; True for anything it must see to refuse it (a
    resource of another FHIR release) or to report it (a code element that is no CodeableConcept). So a
    reader of a large export (a CDS Hooks prefetch: Synthea's 2,574 observations hold a few dozen the
    rules read) parses and converts only these."""
    vocab = vocabulary()
    kind = resource.get("resourceType")
    if other_release(resource, vocab) is not None:
        return True
    if kind not in vocab.conventions["read_resource_types"]:
        return False
    coded = CODED_TYPES.get(kind)
    if coded is None:
        return True
    code = resource.get(coded[0])
    if code is None:
        return False
    if isinstance(code, bytes):
        if not code.lstrip().startswith(b"{"):
            return True
    elif not isinstance(code, dict):
        return True
    return concept_of(code, coded[1], vocab) is not None


def read_selection(heads: list[dict]) -> list[bool]:
    """For each resource (its HEAD_FIELDS), whether to read it: may_be_read, with its copies (with_copies)."""
    return with_copies([(h.get("resourceType"), h.get("id")) for h in heads], [may_be_read(h) for h in heads])


def with_copies(keys: list[tuple], chosen: list[bool]) -> list[bool]:
    """``chosen`` (a resource's (type, id) in ``keys``) with every resource of the same type and id as a
    chosen one: the same resource given twice is read once, in its latest version (fhir-input.md), which
    may be the copy that may_be_read alone would drop; both go to the reader, which decides."""
    wanted = {key for key, keep in zip(keys, chosen) if keep and isinstance(key[1], str) and key[1]}
    if not wanted:
        return chosen
    return [keep or (isinstance(key[1], str) and key in wanted) for key, keep in zip(keys, chosen)]


# ---------------------------------------------------------------- entry point

def other_release(resource: dict, vocab: Vocabulary) -> str | None:
    """Why a resource is not FHIR R4, where it shows: a resource type of another release, or an element
    whose R4 shape differs (a plain-code clinical status is STU3, a CodeableReference medication is R5)."""
    kind = resource.get("resourceType")
    release = vocab.conventions["other_release_resource_types"].get(kind)
    if release:
        return f"{kind} is a FHIR {release} resource"
    if kind in ("Condition", "AllergyIntolerance"):
        for key in ("clinicalStatus", "verificationStatus"):
            if isinstance(resource.get(key), str):
                return f"{kind}.{key} is a plain code as in FHIR STU3 (R4: a CodeableConcept)"
    if kind in MEDICATION_TYPES and isinstance(resource.get("medication"), dict):
        return f"{kind}.medication is a CodeableReference as in FHIR R5 (R4: medicationCodeableConcept or medicationReference)"
    return None


def _resources(name: str, data: bytes, ndjson: bool, sources: tuple[str, ...] | None
               ) -> tuple[list[tuple[dict, str]], list[InputError]]:
    """(resource, where) for every resource of one input, and the lines that were not resources."""
    problems: list[InputError] = []
    if ndjson:
        found = []
        for where, line in ndjson_lines(name, data, sources):
            try:
                found.append((ndjson_resource(where, line), where))
            except InputError as error:
                problems.append(error)
        return found, problems
    entries, _exact = document_resources(name, data)
    return [(resource, where) for resource, where in entries if resource is not None], problems


def document_resources(name: str, data: bytes) -> tuple[list[tuple[dict | None, str]], bool]:
    """The entries of a FHIR JSON document as (resource, where): a Bundle's entries in order ("FILE, entry
    N"; None for an entry without a resource), or a lone resource (where: the file); and whether orjson
    read it (else the standard library did: NaN, integers over 64 bits). References to the Bundle's own
    entries by full URL (``urn:uuid:...``) are resolved here, within their Bundle, by the Patient and
    Medication entries' fullUrls (ndjson.PatientDirectory): a subject or patient becomes ``Patient/ID``, a
    medicationReference ``Medication/ID``, so that the entries read alike wherever they go (with the
    other inputs of a run, as one export: batch.py, load.read_patients). A transaction's Patient or
    Medication without an id is named by its entry's uuid. One entry of another FHIR release refuses the
    document whole (one export of one release); so does JSON that is not FHIR."""
    try:
        document, exact = parse_json_exact(data)
    except (ValueError, RecursionError) as error:
        raise InputError(name, f"not valid JSON ({one_line(error)})") from None
    if not isinstance(document, dict) or "resourceType" not in document:
        raise InputError(name, "JSON but not FHIR (no resourceType)")
    if document["resourceType"] != "Bundle":
        found: list[tuple[dict | None, str]] = [(document, name)]
    else:
        entries = document.get("entry")
        source = EntrySource(name)
        found = _resolved_in_bundle([
            (entry.get("fullUrl") if isinstance(entry, dict) and isinstance(entry.get("fullUrl"), str) else None,
             entry["resource"] if isinstance(entry, dict) and isinstance(entry.get("resource"), dict) else None,
             position(source, number))
            for number, entry in enumerate(entries if isinstance(entries, list) else [], 1)])
    vocab = vocabulary()
    for resource, _where in found:
        release = other_release(resource, vocab) if resource is not None else None
        if release is not None:
            raise InputError(name, f"{resource.get('resourceType')}/{resource.get('id', '?')}: {release}; only FHIR R4 is read")
    return found, exact


def _resolved_in_bundle(entries: list[tuple[str | None, dict | None, str]]) -> list[tuple[dict | None, str]]:
    """A Bundle's entries with the references to its own entries by full URL resolved (document_resources)."""
    directory = PatientDirectory()
    medications: dict[str, str] = {}  # fullUrl -> "Medication/ID"
    named = []
    for full_url, resource, where in entries:
        kind = resource.get("resourceType") if resource is not None else None
        if (kind in ("Patient", "Medication") and not resource.get("id") and full_url is not None
                and full_url.startswith("urn:uuid:")):  # a transaction's new resource: its entry's uuid is its id
            resource = {**resource, "id": full_url[len("urn:uuid:"):]}
        if kind == "Patient":
            directory.add(resource, full_url)
        elif kind == "Medication" and full_url is not None and isinstance(resource.get("id"), str) and resource["id"]:
            medications[full_url] = f"Medication/{resource['id']}"
        named.append((resource, where))
    found = []
    for resource, where in named:
        if resource is not None and resource.get("resourceType") != "Patient":
            target = line_key(resource)
            if target is not None and target.kind == "url":
                pid, _why = directory.resolve(target)
                field_name = "subject" if resource.get("subject") is not None else "patient"
                if pid is not None and reference_target(f"Patient/{pid}") == ("id", pid):
                    resource = {**resource, field_name: {**resource[field_name], "reference": f"Patient/{pid}"}}
            drug = resource.get("medicationReference")
            if isinstance(drug, dict) and isinstance(drug.get("reference"), str) and drug["reference"] in medications:
                resource = {**resource, "medicationReference": {**drug, "reference": medications[drug["reference"]]}}
        found.append((resource, where))
    return found


def export_lines(name: str, data: bytes) -> tuple[str, Iterator[bytes | InputError]]:
    """A FHIR JSON document (document_resources) as export lines, one per entry (empty for an entry
    without a resource, so that line N is entry N), to be spooled with the NDJSON lines of the run as
    one export: the name its lines are spooled under (ndjson.EntrySource of a Bundle, ResourceSource of a
    lone resource), and the lines; an InputError in place of an entry that cannot be written as one line.
    Raises InputError for a document that is not read at all (not FHIR, another release, no resource)."""
    with _no_cyclic_collection():
        entries, exact = document_resources(name, data)
    if not any(resource is not None for resource, _where in entries):
        raise InputError(name, "no FHIR resources in it")
    bundle = not (len(entries) == 1 and entries[0][1] == name)
    return (EntrySource(name) if bundle else ResourceSource(name)), _lines(entries, exact)


@contextlib.contextmanager
def _no_cyclic_collection():
    """The cyclic garbage collector paused: JSON parsed into dicts and lists holds no reference cycles,
    and the collector walking the millions of objects of a large Bundle as they are made cost more than
    the parse (export_lines of a 20 MB Bundle of 5,000 patients: 2.8-3.6 s with it, 1.1 s without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _lines(entries: list[tuple[dict | None, str]], exact: bool) -> Iterator[bytes | InputError]:
    with _no_cyclic_collection():
        yield from _each_line(entries, exact)


def _each_line(entries: list[tuple[dict | None, str]], exact: bool) -> Iterator[bytes | InputError]:
    for resource, where in entries:
        if resource is None:
            yield b""
            continue
        try:
            yield orjson.dumps(resource) if exact else json.dumps(resource, separators=(",", ":")).encode("ascii")
        except (TypeError, ValueError, RecursionError) as error:
            yield InputError(where, f"{resource.get('resourceType')}/{resource.get('id', '?')} could not be read ({one_line(error)})")


def _counted_once(resources: list[tuple[dict, str]], directory: PatientDirectory, problems: list[InputError]
                  ) -> list[tuple[dict, str]]:
    """fhir-input.md: the same resource (type and id) given twice for one patient counts once
    (ndjson.counted_copy: identical copies are one; of differing ones the latest version, by
    meta.versionId, else meta.lastUpdated; where no version tells the latest none is read and one line
    says so, so that no rule uses a contested value: a weight, a dose, a relapse). A Medication (no
    patient) counts once in the input by the same rule. Patient resources are exempt: differing ones all
    reach the store, where queries/facts/00-conflicting-patient-records.ru reports them."""
    # Only a type and id met more than once can be a copy: its patient is resolved there, not for every
    # resource (groups are formed in the order of their first resource, as for all of them).
    first: dict[tuple[str, str], int] = {}
    later: list[tuple[tuple[str, str], int]] = []
    for index, (resource, _where) in enumerate(resources):
        kind, ident = resource.get("resourceType"), resource.get("id")
        if kind == "Patient" or ident is None or ident == "":
            continue
        key = (str(kind), str(ident))
        if first.setdefault(key, index) != index:
            later.append((key, index))
    if not later:
        return resources
    repeated = sorted({first[key] for key, _index in later} | {index for _key, index in later})
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index in repeated:
        resource = resources[index][0]
        kind, ident = resource.get("resourceType"), resource.get("id")
        if kind in REFERENCED_RESOURCE_TYPES:
            groups[(str(kind), str(ident), None)].append(index)
            continue
        target = line_key(resource)
        pid, _why = directory.resolve(target)
        groups[(str(kind), str(ident), pid if pid is not None else repr(target))].append(index)
    dropped: set[int] = set()
    for (kind, ident, pid), indices in groups.items():
        if len(indices) < 2:
            continue
        keep = counted_copy([resources[index][0] for index in indices])
        dropped.update(index for k, index in enumerate(indices) if k != keep)
        if keep is None:
            problems.append(InputError(resources[indices[-1]][1], contested(f"{kind}/{ident}", len(indices), pid)))
    if not dropped:
        return resources
    return [item for index, item in enumerate(resources) if index not in dropped]


def to_patients(name: str, data: bytes, ndjson: bool = False, sources: tuple[str, ...] | None = None
                ) -> tuple[list[Patient], list[InputError], int]:
    """The patients of one FHIR input (their N-Triples, by patient id), the problems met in it (bad
    NDJSON lines, resources of another FHIR release), and how many resources it held. ``sources``: the
    input is a spooled NDJSON bucket (see ndjson_lines)."""
    converter, problems, count = _convert(name, data, ndjson, sources)
    patients = [Patient(iri=iri, id=converter.ids[iri], source=name, ntriples=_encode(lines))
                for iri, lines in converter.lines.items()]
    return sorted(patients, key=lambda p: (p.id, str(p.iri))), problems, count


def _encode(lines: dict[str, None]) -> bytes:
    # Lone surrogates (legal in JSON escapes, not in UTF-8) become "?" rather than a crash.
    return "".join(lines).encode("utf-8", "replace")


def to_patients_of_resources(name: str, resources: list[dict]) -> tuple[list[Patient], list[InputError], int]:
    """to_patients for resources already parsed (one document's: the same as a Bundle of them, without
    encoding and parsing them again), those may_be_read only: the others would be skipped anyway."""
    found = [(r, name) for r, keep in zip(resources, read_selection(resources)) if keep]
    converter, problems, count = _convert_resources(name, found, [], ndjson=False)
    patients = [Patient(iri=iri, id=converter.ids[iri], source=name, ntriples=_encode(lines))
                for iri, lines in converter.lines.items()]
    return sorted(patients, key=lambda p: (p.id, str(p.iri))), problems, count


def to_graph(name: str, data: bytes, ndjson: bool = False) -> tuple[rdflib.Graph, list[InputError], int]:
    """All patients of one FHIR file in one graph (for inspection), the problems, the resource count."""
    converter, problems, count = _convert(name, data, ndjson)
    union = rdflib.Graph().parse(data=b"".join(_encode(lines) for lines in converter.lines.values()), format="nt")
    return union, problems, count


def _convert(name: str, data: bytes, ndjson: bool, sources: tuple[str, ...] | None = None
             ) -> tuple["_Converter", list[InputError], int]:
    resources, problems = _resources(name, data, ndjson, sources)
    return _convert_resources(name, resources, problems, ndjson)


def _convert_resources(name: str, resources: list[tuple[str | None, dict, str]], problems: list[InputError], ndjson: bool
                       ) -> tuple["_Converter", list[InputError], int]:
    vocab = vocabulary()
    converter = _Converter(name=name, vocab=vocab, problems=problems)
    for resource, _where in resources:
        if resource.get("resourceType") == "Patient":
            converter.directory.add(resource)
    resources = _counted_once(resources, converter.directory, problems)
    converter.index([resource for resource, _where in resources])  # the copies that count (Medications: one)
    skipped: list[tuple[str, str]] = []
    for resource, where in resources:
        label = f"{resource.get('resourceType')}/{resource.get('id', '?')}"
        release = other_release(resource, vocab)
        if release is not None:
            if not ndjson:  # a Bundle or a lone resource is one export of one release: refuse it whole
                raise InputError(name, f"{label}: {release}; only FHIR R4 is read")
            skipped.append((where, release))
            continue
        converter.where = where
        try:
            converter.convert(resource)
        except Exception as error:  # noqa: BLE001 - one resource (OverflowError of a date 9999-12-31 plus days, ...) never loses the others
            problems.append(InputError(where, f"{label} could not be read ({one_line(error)})"))
    if skipped:  # one line for the lot: an export of another release would otherwise print one per line
        where, release = skipped[0]
        more = f"; {len(skipped) - 1} more such resources skipped" if len(skipped) > 1 else ""
        problems.append(InputError(where, f"{release}; only FHIR R4 is read, resource skipped{more}"))
    converter.finish()
    return converter, problems, len(resources)
