"""The guideline as HL7 FHIR Clinical Practice Guidelines (CPG) resources: `neuropathy-kg export fhir-cpg`.

One Bundle (type collection), every resource built from the ontology and validated against the FHIR
models of fhir.resources before anything is written:
- a PlanDefinition for the pathway (its url is the guideline's IRI): one action per catalogue action in
  catalogue order, with its CPG activity type (ontology/alignment.ttl), citations, the SPARQL query that
  decides when it applies, the actions it follows or accompanies, and for a drug its ActivityDefinition;
  a drug dosed by renal band gets one sub-action per band, exactly one of which applies;
- an ActivityDefinition per dose specification (url: its IRI) with Dosage: titration steps, maximum per
  day, weight-based amounts (g/kg, mg/kg) and ranges;
- a Citation per source (url: its IRI), classified by its ECO evidence type where the ontology gives one;
- a ValueSet per coded concept (url: the concept's IRI) listing the codes the FHIR reader recognises.

FHIR version: R4B (4.3.0), the technical correction of R4 that fhir.resources ships models for (it has
none for 4.0.1); PlanDefinition, ActivityDefinition and ValueSet have R4's structure there, and Citation
exists only from R4B. See docs/linking.md.
"""

from __future__ import annotations

import re
import uuid
from functools import cache

import rdflib
from rdflib import RDF, RDFS, URIRef
from rdflib.namespace import DCTERMS, SKOS

from . import NKG, guideline
from .engine import local_name
from .guideline import CITO

UCUM = "http://unitsofmeasure.org"
CPG_ACTIVITY = "http://hl7.org/fhir/uv/cpg/CodeSystem/cpg-activity-type-cs"
PROJECT_CODES = f"{NKG}CodeSystem/concepts"
SPARQL = "application/sparql-query"
ECO = "http://purl.obolibrary.org/obo/ECO_"
PREFIX = f"PREFIX nkg: <{NKG}>\n"


class ExportError(Exception):
    """A resource failed its FHIR model: a bug in the export, reported in one line."""


def _id(iri) -> str:
    """A FHIR id (1-64 of [A-Za-z0-9-.]) from an IRI's local name."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", str(iri).rsplit("/", 1)[-1])[:64]


def _name(iri) -> str:
    """A computable name (CamelCase, starting with a capital letter) from an IRI's local name."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", _id(iri)) if part) or "Unnamed"


def _number(value) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _quantity(value, unit: str) -> dict:
    return {"value": _number(value), "unit": unit, "system": UCUM, "code": unit}


class _Builder:
    def __init__(self, graph: rdflib.Graph):
        self.g = graph
        _iri, self.version = guideline.guideline_info()
        self.systems = sorted(((str(graph.value(s, NKG.iriPrefix)), str(graph.value(s, NKG.fhirSystem)))
                               for s in graph.subjects(RDF.type, NKG.CodeSystem)), key=lambda item: (-len(item[0]), item[1]))

    def text(self, node, predicate=RDFS.label) -> str:
        return str(self.g.value(node, predicate) or "")

    def common(self, kind: str, iri) -> dict:
        return {"resourceType": kind, "id": _id(iri), "url": str(iri), "version": self.version, "name": _name(iri),
                "title": self.text(iri), "status": "active", "description": self.text(iri, SKOS.definition) or None}

    def citations(self, node) -> list[dict]:
        sources = sorted(self.g.objects(node, CITO.citesAsEvidence), key=lambda s: guideline.citation_key(self.text(s, DCTERMS.identifier)))
        return [{"type": "citation", "label": self.text(s, DCTERMS.identifier), "display": self.text(s), "resource": str(s)} for s in sources]

    def codings(self, concept) -> list[dict]:
        """The FHIR codings of a concept: every system whose IRI prefix its mapped code IRIs start with."""
        found = []
        for code_iri in sorted(set(self.g.objects(concept, SKOS.exactMatch)) | set(self.g.objects(concept, SKOS.closeMatch))):
            for prefix, system in self.systems:
                if str(code_iri).startswith(prefix):
                    found.append({"system": system, "code": str(code_iri)[len(prefix):]})
        return found

    # ------------------------------------------------------------ resources
    def citation(self, source) -> dict:
        resource = self.common("Citation", source)
        resource["summary"] = [{"text": self.text(source, DCTERMS.bibliographicCitation) or self.text(source, SKOS.definition)}]
        resource["citedArtifact"] = {"title": [{"text": self.text(source)}]}
        resource["identifier"] = [{"system": f"{NKG}citation", "value": self.text(source, DCTERMS.identifier)}]
        evidence = self.g.value(source, NKG.evidenceType)
        if evidence is not None and str(evidence).startswith(ECO):
            resource["classification"] = [{"type": {"text": "evidence type"}, "classifier": [{"coding": [
                {"system": "http://purl.obolibrary.org/obo/eco.owl", "code": "ECO:" + str(evidence)[len(ECO):],
                 "display": self.text(evidence)}]}]}]
        return resource

    def dosages(self, spec) -> list[dict]:
        g, unit = self.g, self.text(spec, NKG.unit)
        times = int(g.value(spec, NKG.timesPerDay) or 1)
        timing = {"repeat": {"frequency": times, "period": 1, "periodUnit": "d"}}
        if g.value(spec, NKG.days) is not None:
            timing["repeat"]["boundsDuration"] = _quantity(g.value(spec, NKG.days), "d")
        base = {"timing": timing}
        if g.value(spec, NKG.route) is not None:
            base["route"] = {"text": self.text(spec, NKG.route)}
        if g.value(spec, NKG.maxDailyDose) is not None:
            base["maxDosePerPeriod"] = {"numerator": _quantity(g.value(spec, NKG.maxDailyDose), unit), "denominator": _quantity(1, "d")}
        per_kg, low_kg, high_kg = (g.value(spec, p) for p in (NKG.amountPerKgPerDay, NKG.minAmountPerKgPerDay, NKG.maxAmountPerKgPerDay))
        if per_kg is not None:
            return [{**base, "sequence": 1, "text": f"{_number(per_kg)} {unit}/kg of actual body weight a day",
                     "doseAndRate": [{"doseQuantity": _quantity(float(per_kg) / times, f"{unit}/kg")}]}]
        if low_kg is not None and high_kg is not None:
            return [{**base, "sequence": 1, "text": f"{_number(low_kg)}-{_number(high_kg)} {unit}/kg a day",
                     "doseAndRate": [{"doseRange": {"low": _quantity(float(low_kg) / times, f"{unit}/kg"),
                                                    "high": _quantity(float(high_kg) / times, f"{unit}/kg")}}]}]
        if g.value(spec, NKG.amountPerDose) is not None:
            amount = g.value(spec, NKG.amountPerDose)
            return [{**base, "sequence": 1, "text": f"{_number(amount)} {unit} {times} time(s) a day",
                     "doseAndRate": [{"doseQuantity": _quantity(amount, unit)}]}]
        steps = []
        for daily in (g.value(spec, NKG.startDailyDose), g.value(spec, NKG.targetDailyDose)):
            if daily is not None and _number(daily) not in [step for step, _ in steps]:
                steps.append((_number(daily), len(steps) + 1))
        return [{**base, "sequence": sequence, "text": f"{'start' if sequence == 1 else 'then'} {daily} {unit}/day in {times} dose(s)",
                 "doseAndRate": [{"doseQuantity": _quantity(daily / times, unit)}]} for daily, sequence in steps]

    def activity(self, spec) -> dict:
        drug = self.g.value(spec, NKG.drug)
        resource = self.common("ActivityDefinition", spec)
        resource.update({"kind": "MedicationRequest", "intent": "proposal",
                         "productCodeableConcept": {"coding": self.codings(drug), "text": self.text(drug)},
                         "dosage": self.dosages(spec), "relatedArtifact": self.citations(spec) or None})
        return resource

    def value_set(self, concept) -> dict:
        by_system: dict[str, list[dict]] = {}
        for coding in self.codings(concept):
            by_system.setdefault(coding["system"], []).append({"code": coding["code"]})
        resource = self.common("ValueSet", concept)
        resource["compose"] = {"include": [{"system": system, "concept": codes} for system, codes in sorted(by_system.items())]}
        return resource

    def dose_specs(self, action) -> tuple[URIRef | None, list[URIRef]]:
        """(the drug-wide dose specification, the per-renal-band ones) of an action that recommends one drug."""
        drugs = list(self.g.objects(action, NKG.recommendsUse))
        if len(drugs) != 1:
            return None, []
        specs = sorted(self.g.subjects(NKG.drug, drugs[0]))
        specs = [s for s in specs if (s, RDF.type, NKG.DoseSpecification) in self.g]
        whole = next((s for s in specs if self.g.value(s, NKG.forRenalBand) is None), None)
        return whole, [s for s in specs if self.g.value(s, NKG.forRenalBand) is not None]

    def plan(self, queries: dict[str, str]) -> tuple[dict, list[URIRef]]:
        """The PlanDefinition, and the dose specifications its actions refer to."""
        catalogue = [e for e in guideline.catalogue().values() if e.kind == "RecommendedAction"]
        used: list[URIRef] = []
        actions = []
        for entry in sorted(catalogue, key=lambda e: (e.order, e.id)):
            node = URIRef(entry.iri)
            action = {"id": entry.id, "title": entry.label, "description": self.text(node, SKOS.definition),
                      "code": [{"coding": [{"system": PROJECT_CODES, "code": entry.id, "display": entry.label}]}],
                      "documentation": self.citations(node)}
            activity = self.g.value(node, NKG.cpgActivityType)
            if activity is not None:
                action["code"].insert(0, {"coding": [{"system": CPG_ACTIVITY, "code": str(activity)}]})
            if entry.id in queries:
                action["condition"] = [{"kind": "applicability", "expression": {
                    "language": SPARQL, "description": "Applies to each patient this SELECT returns, after queries/facts/ have run "
                                                        "(neuropathy-kg queries/actions/).", "expression": queries[entry.id]}}]
            related = [{"actionId": local_name(other), "relationship": "after-end",
                        **({"offsetDuration": _quantity(self.g.value(node, NKG.dueAfterDays), "d")}
                           if self.g.value(node, NKG.dueAfterDays) is not None else {})}
                       for other in sorted(self.g.objects(node, NKG.follows))]
            related += [{"actionId": local_name(other), "relationship": "concurrent"} for other in sorted(self.g.objects(node, NKG.concurrentWith))]
            if related:
                action["relatedAction"] = related
            whole, by_band = self.dose_specs(node)
            if by_band:
                action["selectionBehavior"] = "exactly-one"
                action["action"] = [self.band_action(entry.id, spec) for spec in by_band]
                used += by_band
            elif whole is not None:
                action["definitionCanonical"] = str(whole)
                used.append(whole)
            actions.append(action)
        plan = self.common("PlanDefinition", NKG.guideline)
        plan.update({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/plan-definition-type",
                                          "code": "clinical-protocol"}]},
                     "relatedArtifact": [{"type": "citation", "label": self.text(s, DCTERMS.identifier), "resource": str(s)}
                                         for s in self.sources()],
                     "action": actions})
        return plan, used

    def band_action(self, parent: str, spec) -> dict:
        band = self.g.value(spec, NKG.forRenalBand)
        code = self.text(band, NKG.bandCode)
        return {"id": f"{parent}-crcl-{_id(band).removeprefix('renal-band-')}", "title": f"{self.text(spec)}",
                "condition": [{"kind": "applicability", "expression": {
                    "language": SPARQL, "description": f"Creatinine clearance band {code} mL/min",
                    "expression": f"{PREFIX}ASK {{ ?patient nkg:renalBand <{band}> }}"}}],
                "definitionCanonical": str(spec)}

    def sources(self) -> list[URIRef]:
        return sorted(self.g.subjects(RDF.type, NKG.Source), key=lambda s: guideline.citation_key(self.text(s, DCTERMS.identifier)))

    def coded_concepts(self) -> list[URIRef]:
        return sorted({c for c in self.g.subjects(SKOS.exactMatch, None)} | {c for c in self.g.subjects(SKOS.closeMatch, None)},
                      key=str)


def _action_queries() -> dict[str, str]:
    """Catalogue id -> the SELECT in queries/actions/ that derives it (one file may serve several ids)."""
    found = {}
    for _stem, text in guideline.action_queries():
        block = re.search(r"VALUES\s+\?action\s*\{([^}]*)\}", text)
        for action_id in re.findall(r"nkg:([a-z0-9-]+)", block.group(1) if block else ""):
            found[action_id] = text
    return found


@cache
def _models():
    from fhir.resources.R4B.activitydefinition import ActivityDefinition
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.citation import Citation
    from fhir.resources.R4B.plandefinition import PlanDefinition
    from fhir.resources.R4B.valueset import ValueSet

    return {"ActivityDefinition": ActivityDefinition, "Bundle": Bundle, "Citation": Citation,
            "PlanDefinition": PlanDefinition, "ValueSet": ValueSet}


def _clean(value):
    """Drop empty values (None, "", [], {}) that FHIR does not allow."""
    if isinstance(value, dict):
        cleaned = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [v for v in (_clean(item) for item in value) if v not in (None, "", [], {})]
    return value


def export_bundle(graph: rdflib.Graph | None = None) -> dict:
    """The guideline's FHIR CPG Bundle as JSON-ready data; every resource passes its FHIR R4B model."""
    builder = _Builder(graph if graph is not None else guideline.ontology())
    plan, used = builder.plan(_action_queries())
    resources = [plan]
    resources += [builder.activity(spec) for spec in dict.fromkeys(used)]
    resources += [builder.citation(source) for source in builder.sources()]
    resources += [builder.value_set(concept) for concept in builder.coded_concepts()]
    models = _models()
    entries = []
    for resource in map(_clean, resources):
        try:
            models[resource["resourceType"]].model_validate(resource)
        except Exception as error:  # pydantic's ValidationError, one line of it
            first = str(error).splitlines()
            raise ExportError(f"{resource['resourceType']}/{resource['id']} fails its FHIR R4B model: {' '.join(first[:3])}") from None
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, resource['url'])}", "resource": resource})
    bundle = {"resourceType": "Bundle", "id": "neuropathy-kg-cpg", "type": "collection", "entry": entries}
    models["Bundle"].model_validate(bundle)
    return bundle
