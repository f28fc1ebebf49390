"""Run the guideline on patients: derive facts, select actions, validate with SHACL, build the JSON.

No clinical number lives here: thresholds, doses and conditions are read by the SPARQL in
``queries/`` from the ontology, and pitfalls are SHACL shapes. This module only moves data between
the engine and the output.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from typing import Iterable

import pyshacl
import rdflib
from rdflib import Literal, URIRef
from rdflib.namespace import RDF, SH

from . import NKG, BoundedCache, guideline
from .engine import Store, Term, local_name, new_store
from .load import Patient, assessment_ntriples, chunks

#: How many patients share one store. Oxigraph: every query is linear in the chunk, and each chunk pays
#: a fixed cost (about 20 ms: the ontology loaded, each query planned), so chunks are large. rdflib's
#: engine slows down sharply with graph size: one patient at a time.
CHUNK_SIZE = {"oxigraph": 1000, "rdflib": 1}

DOSE_FIELDS = (
    "dailyAmount", "days", "totalAmount", "startDailyAmount", "targetDailyAmount", "minDailyAmount", "maxDailyAmount",
)
#: Output groups an action query may fill: JSON key -> {query variable: JSON field}.
ACTION_GROUPS = {
    "target": {"targetLow": "low", "targetHigh": "high", "targetUnit": "unit"},
    "measures": {"painScore": "painScore", "mrc": "mrc", "walkingDistance": "walkingDistanceM"},
}
SEVERITY_RANK = {"violation": 0, "warning": 1, "info": 2}


def derive(patients: Iterable[Patient], as_of: dt.date, engine: str = "oxigraph") -> Store:
    """A store holding the ontology, the patients and every derived fact (queries/facts/*.ru)."""
    store = new_store(engine)
    store.add_static_ntriples(guideline.ontology_ntriples())
    store.add_ntriples(b"".join([assessment_ntriples(as_of), *(p.ntriples for p in patients)]))
    for _name, update in guideline.fact_updates():
        store.update(update)
    return store


def date_of_day_number(day: int) -> dt.date:
    """The date of a Julian day number, as queries/facts/01-day-numbers.ru computes them."""
    return dt.date.fromordinal(day - JULIAN_DAY_OF_ORDINAL_ZERO)


#: date.toordinal() counts from 0001-01-01 = 1; that day's Julian day number is 1721426.
JULIAN_DAY_OF_ORDINAL_ZERO = 1721425


# ---------------------------------------------------------------- recommend

def recommend(patients: list[Patient], as_of: dt.date, engine: str = "oxigraph") -> dict:
    """The recommend command's JSON document (interface.md) for these patients."""
    results = []
    for chunk in chunks(patients, CHUNK_SIZE[engine]):
        results.extend(recommend_chunk(chunk, as_of, engine))
    return recommend_document(as_of, results)


def recommend_chunk(patients: list[Patient], as_of: dt.date, engine: str = "oxigraph") -> list[dict]:
    """Each patient's recommend result, deriving the facts of the whole chunk in one store."""
    return _recommend_chunk(derive(patients, as_of, engine), patients)


def assess(patients: list[Patient], as_of: dt.date, engine: str = "oxigraph") -> tuple[dict, dict]:
    """(recommend document, validate document), deriving the facts once per patient and validating with
    pySHACL, the reference engine (the scenario tests use this)."""
    recommended, validated = [], []
    for patient in patients:
        store = derive([patient], as_of, engine)
        recommended.extend(_recommend_chunk(store, [patient]))
        validated.append(_validate_patient(store, patient))
    return recommend_document(as_of, recommended), validate_document(as_of, validated)


def assess_chunk(patients: list[Patient], as_of: dt.date, engine: str = "oxigraph") -> list[dict]:
    """Per patient, {"recommend": ..., "validate": ...} from one derivation of the chunk (compiled shapes)."""
    store = derive(patients, as_of, engine)
    recommended = _recommend_chunk(store, patients)
    validated = _validate_chunk(store, patients)
    return [{"recommend": r, "validate": v, "conforms": v["conforms"]} for r, v in zip(recommended, validated)]


def recommend_document(as_of: dt.date, results: list[dict]) -> dict:
    iri, version = guideline.guideline_info()
    return {"guideline": iri, "version": version, "asOf": as_of.isoformat(), "patients": results}


def _recommend_chunk(store: Store, chunk: list[Patient]) -> list[dict]:
    facts = _rows_by_patient(store.select_terms(guideline.report_query("patient-facts")))
    active = _rows_by_patient(store.select_terms(guideline.report_query("active-medication")))
    missing: dict[str, list[dict[str, Term]]] = {}
    actions: dict[str, list[dict]] = defaultdict(list)
    # Actions and missing data are reported for eligible patients only (_patient_result): a chunk with
    # none (a CDS Hooks request for a patient out of the guideline's scope, most of them) skips their
    # queries, whose rows would all be dropped.
    if any(_flag(facts.get(str(p.iri), [{}])[0], "eligible") for p in chunk):
        missing = _rows_by_patient(store.select_terms(guideline.report_query("missing-data")))
        for _name, query in guideline.action_queries():
            for row in store.select_terms(query):
                actions[row["patient"].text].append(row)
    return [
        _patient_result(p, facts.get(str(p.iri), [{}])[0], actions.get(str(p.iri), []), missing.get(str(p.iri), []),
                        active.get(str(p.iri), []))
        for p in chunk
    ]


def _rows_by_patient(rows: list[dict[str, Term]]) -> dict[str, list[dict[str, Term]]]:
    grouped: dict[str, list[dict[str, Term]]] = defaultdict(list)
    for row in rows:
        grouped[row["patient"].text].append(row)
    return grouped


def _flag(row: dict[str, Term], name: str) -> bool:
    return name in row and row[name].value is True


def _value(row: dict[str, Term], name: str) -> object:
    return row[name].value if name in row else None


def _patient_result(patient: Patient, facts: dict[str, Term], action_rows: list[dict[str, Term]],
                    missing_rows: list[dict[str, Term]], active_rows: list[dict[str, Term]] = ()) -> dict:
    in_scope = _flag(facts, "inScope")
    eligible = _flag(facts, "eligible")
    crcl = None
    if "creatinineClearance" in facts:
        crcl = {
            "value": facts["creatinineClearance"].value,
            "unit": "mL/min",
            "method": facts["clearanceMethod"].value,
        }
    fact_json = {
        "creatinineClearance": crcl,
        "renalBand": _value(facts, "renalBand"),
        "previousIvigResponder": _flag(facts, "previousIvigResponder"),
        "relapse": _flag(facts, "relapse"),
        "relapseDate": _value(facts, "relapseDate"),
        "deceased": _flag(facts, "deceased"),
        "ageYears": _value(facts, "ageYears"),
        "weightKg": _value(facts, "weightKg"),
        "painScore": _value(facts, "painScore"),
        "ivigTolerated": _flag(facts, "ivigTolerated"),
        "onFirstLineAgent": _flag(facts, "onFirstLineAgent"),
        "optimizedPharmacotherapy": _flag(facts, "optimizedPharmacotherapy"),
        "painNotControlled": _flag(facts, "painNotControlled"),
        "refractory": _flag(facts, "refractory"),
        # Where the phenotype came from: "exam" (symmetric on exam, from then on), "recorded" (the latest
        # condition code or exam), "ivig-response" (unknown subtype, inferred asymmetric from a response).
        "phenotypeSource": _value(facts, "phenotypeSource"),
        "phenotypeInferred": _flag(facts, "phenotypeInferred"),
        # The records in effect (status active), by drug: what a proposed dose of the drug replaces
        # (queries/report/active-medication.rq; apply.py names them in the FHIR output).
        "activeMedication": [{"drug": local_name(row["drug"].text), "record": row["record"].text} for row in active_rows],
    }
    actions = [_action_json(row) for row in action_rows] if eligible else []
    actions = _dedupe(sorted(actions, key=lambda a: (a["order"], a["id"], action_key(a)[1] or "", a.get("due", ""))))
    for action in actions:
        del action["order"]
    needed: dict[str, set[str]] = defaultdict(set)
    if eligible:
        for row in missing_rows:
            needed[row["finding"].value].add(row["neededFor"].value)
    return {
        "patient": patient.id,
        "inScope": in_scope,
        "phenotype": _value(facts, "phenotype"),
        "facts": fact_json,
        "actions": actions,
        "missingData": [{"id": k, "neededFor": sorted(v)} for k, v in sorted(needed.items())],
    }


def action_key(action: dict) -> tuple[str, str | None]:
    """What makes one derived action: its catalogue id and, for a drug action, its drug. An action is
    derived once per patient, but an action over several drugs (reduce-to-renal-dose: pregabalin or
    gabapentin) is derived once per drug: a patient above the renal maximum on both gets both."""
    return action["id"], (action.get("dose") or {}).get("drug")


def _dedupe(actions: list[dict]) -> list[dict]:
    """The first of the rows of each action (action_key): a query may match one action more than once."""
    seen, unique = set(), []
    for action in actions:
        key = action_key(action)
        if key not in seen:
            seen.add(key)
            unique.append(action)
    return unique


def _action_json(row: dict[str, Term]) -> dict:
    """The JSON of one action row. It depends on the row's values, and on whose row it is only where the
    action's rationale template names the patient; a population repeats the same rows many times, so each
    distinct one is made once."""
    personal = "{patient}" in guideline.catalogue()[row["action"].value].rationale
    key = tuple(item for item in row.items() if personal or item[0] != "patient")
    made = _ACTIONS_MADE.get(key)
    if made is None:
        made = _ACTIONS_MADE.remember(key, _make_action_json(row))
    # A copy two levels deep (the action, its dose, target, measures and citations), so that a caller
    # that changes its result cannot change another patient's.
    return {k: v.copy() if isinstance(v, (dict, list)) else v for k, v in made.items()}


_ACTIONS_MADE = BoundedCache(10_000)  # a made action is about 1 KB


def _make_action_json(row: dict[str, Term]) -> dict:
    action_id = row["action"].value
    entry = guideline.catalogue()[action_id]
    values = {name: term.value for name, term in row.items()}
    out: dict = {
        "id": action_id,
        "iri": entry.iri,
        "label": entry.label,
        "citations": list(entry.citations),
        "statement": entry.statement,
        "rationale": guideline.rationale(action_id, values),
        "order": entry.order,
    }
    if "drug" in values:
        dose = {"drug": values["drug"], "unit": values.get("unit")}
        dose.update({f: values[f] for f in DOSE_FIELDS if f in values})
        out["dose"] = dose
    for group, fields in ACTION_GROUPS.items():
        picked = {json_name: values[var] for var, json_name in fields.items() if var in values}
        if picked:
            out[group] = picked
    if "dueDay" in values:
        out["due"] = date_of_day_number(int(values["dueDay"])).isoformat()
    return out


# ---------------------------------------------------------------- validate

SHACL_MODES = ("compiled", "pyshacl")


def validate(patients: list[Patient], as_of: dt.date, engine: str = "oxigraph", shacl: str = "compiled") -> dict:
    """The validate command's JSON document (interface.md): SHACL findings per patient.

    ``shacl="pyshacl"`` runs the shapes with pySHACL, one patient graph at a time (the reference);
    ``shacl="compiled"`` runs each shape's SPARQL once per chunk of patients on the engine (the fast
    path, identical results: tests/test_population.py)."""
    size = CHUNK_SIZE[engine] if shacl == "compiled" else 1
    results = []
    for chunk in chunks(patients, size):
        results.extend(validate_chunk(chunk, as_of, engine, shacl))
    return validate_document(as_of, results)


def validate_chunk(patients: list[Patient], as_of: dt.date, engine: str = "oxigraph", shacl: str = "compiled") -> list[dict]:
    """Each patient's validate result: compiled shapes over the chunk's store, or pySHACL per patient."""
    if shacl == "compiled":
        return _validate_chunk(derive(patients, as_of, engine), patients)
    return [_validate_patient(derive([p], as_of, engine), p) for p in patients]


@dataclass(frozen=True)
class CompiledShape:
    """A patient shape's SHACL-SPARQL constraint as one set-based query over a chunk of patients."""

    shape: str
    entry: str
    severity: str
    message: str
    query: str


@cache
def compiled_shapes() -> tuple[CompiledShape, ...]:
    """Every patient shape (shapes/pitfalls, shapes/data) compiled: $this becomes ?this, bound by the
    shape's own patterns (every group that uses $this binds it by a triple pattern of its own, which
    makes pre-binding and joining agree). The shape's target, nkg:Patient, is applied when rows are
    grouped by patient (_validate_chunk): every patient of a chunk is typed nkg:Patient and a row whose
    ?this is none of them is dropped, so no type pattern is added to the query, where it would steer
    Oxigraph's planner away from the shape's own most selective pattern (docs/engine-notes.md)."""
    shapes = guideline.shapes()
    compiled = []
    for node in sorted(set(shapes.subjects(RDF.type, SH.NodeShape))):
        constraint = shapes.value(node, SH.sparql)
        if shapes.value(node, SH.targetClass) != NKG.Patient or constraint is None:
            raise RuntimeError(f"shape {node} cannot be compiled: patient shapes must target nkg:Patient with sh:sparql")
        prefixes = "".join(
            f"PREFIX {shapes.value(d, SH.prefix)}: <{shapes.value(d, SH.namespace)}>\n"
            for d in shapes.objects(shapes.value(constraint, SH.prefixes), SH.declare)
        )
        select = str(shapes.value(constraint, SH.select)).replace("$this", "?this")
        severity = str(shapes.value(node, SH.severity)).rsplit("#", 1)[-1].lower()
        compiled.append(CompiledShape(shape=str(node), entry=local_name(shapes.value(node, NKG.implements)),
                                      severity=severity, message=str(shapes.value(constraint, SH.message)),
                                      query=prefixes + select))
    return tuple(compiled)


def _sparql_message(template: str, bindings: dict[str, str]) -> str:
    """sh:message with {?var} / {$var} replaced as pySHACL does (the text of each bound term)."""
    for name, text in bindings.items():
        # A function, not a replacement string: patient text such as "mg\\1" is not a regex template.
        template = re.sub("{{[?$]{}}}".format(name), lambda _match, text=text: text, template)
    return template


def _validate_chunk(store: Store, chunk: list[Patient]) -> list[dict]:
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for shape in compiled_shapes():
        entry = guideline.catalogue().get(shape.entry)
        for row in store.select_terms(shape.query):
            focus = row["this"]
            value = row.get("value", focus)
            bindings = {k: v.text for k, v in row.items() if k not in ("this", "value")}
            bindings.update({"this": focus.text, "value": value.text})
            finding = {
                "id": shape.entry,
                "severity": shape.severity,
                "message": _sparql_message(shape.message, bindings),
                "focus": focus.text,
                "shape": shape.shape,
                "citations": list(entry.citations) if entry else [],
            }
            if value.iri and value.text != focus.text:
                finding["value"] = value.text
            by_patient[focus.text].append(finding)
    results = []
    for patient in chunk:  # the shapes' target: rows whose focus is not a patient of the chunk are dropped
        findings = _sorted_unique(by_patient.get(str(patient.iri), []))
        results.append({"patient": patient.id, "conforms": not any(f["severity"] == "violation" for f in findings),
                        "findings": findings})
    return results


def validate_document(as_of: dt.date, results: list[dict]) -> dict:
    return {"conforms": all(r["conforms"] for r in results), "asOf": as_of.isoformat(), "patients": results}


def _validate_patient(store: Store, patient: Patient) -> dict:
    findings = _shacl_findings(store.to_graph())
    return {
        "patient": patient.id,
        "conforms": not any(f["severity"] == "violation" for f in findings),
        "findings": findings,
    }


def shacl_report(data_graph: rdflib.Graph, shapes: rdflib.Graph | None = None) -> rdflib.Graph:
    """Run the patient shapes (or the given shapes) with pySHACL; for patients the data graph must hold
    ontology, patient and facts. It is validated in place (pySHACL adds nothing without inference)."""
    _conforms, report, text = pyshacl.validate(
        data_graph, shacl_graph=shapes if shapes is not None else guideline.shapes(), inference="none",
        advanced=False, inplace=True, allow_warnings=True, allow_infos=True,
    )
    if not isinstance(report, rdflib.Graph):  # pySHACL reports a broken shapes graph this way
        raise RuntimeError(f"the SHACL shapes could not run: {text}")
    return report


def validate_guideline(graph: rdflib.Graph | None = None) -> dict:
    """The guideline graph (by default the shipped ontology) checked against shapes/guideline/."""
    data = rdflib.Graph()
    data += graph if graph is not None else guideline.ontology()
    findings = _shacl_findings(data, guideline.guideline_shapes())
    return {"conforms": not any(f["severity"] == "violation" for f in findings), "findings": findings}


def _shacl_findings(data_graph: rdflib.Graph, shapes: rdflib.Graph | None = None) -> list[dict]:
    shapes = shapes if shapes is not None else guideline.shapes()
    report = shacl_report(data_graph, shapes)
    findings = []
    for result in report.subjects(RDF.type, SH.ValidationResult):
        shape = report.value(result, SH.sourceShape)
        implemented = _implemented_entry(shapes, shape)
        entry = guideline.catalogue().get(implemented) if implemented else None
        severity = str(report.value(result, SH.resultSeverity)).rsplit("#", 1)[-1].lower()
        owner = _named_shape(shapes, shape)
        value = report.value(result, SH.value)
        findings.append({
            "id": implemented or "shacl-constraint",
            "severity": severity,
            "message": str(report.value(result, SH.resultMessage) or (entry.label if entry else "")),
            "focus": str(report.value(result, SH.focusNode)),
            "shape": str(owner),
            "citations": list(entry.citations) if entry else [],
        })
        if isinstance(value, URIRef) and str(value) != findings[-1]["focus"]:
            findings[-1]["value"] = str(value)
    return _sorted_unique(findings)


def _sorted_unique(findings: list[dict]) -> list[dict]:
    unique = {(f["id"], f["focus"], f.get("value", ""), f["message"], f["severity"]): f for f in findings}
    return sorted(unique.values(), key=lambda f: (SEVERITY_RANK.get(f["severity"], 3), f["id"], f["focus"], f.get("value", ""), f["message"]))


def _named_shape(shapes: rdflib.Graph, shape):
    """The named shape a result came from (a property shape's parent node shape where it is blank)."""
    if isinstance(shape, rdflib.BNode):
        parent = shapes.value(None, SH.property, shape)
        if parent is not None:
            return parent
    return shape


def _implemented_entry(shapes: rdflib.Graph, shape) -> str | None:
    for node in (shape, _named_shape(shapes, shape)):
        value = shapes.value(node, NKG.implements)
        if value is not None:
            return local_name(value)
    return None


def validation_report_graph(document: dict) -> rdflib.Graph:
    """The validate result as one standard sh:ValidationReport (for --format turtle)."""
    graph = rdflib.Graph()
    graph.bind("sh", SH)
    graph.bind("nkg", NKG)
    report = rdflib.BNode("report")
    graph.add((report, RDF.type, SH.ValidationReport))
    graph.add((report, SH.conforms, Literal(document["conforms"])))
    for patient in document["patients"]:
        for index, finding in enumerate(patient["findings"]):
            result = rdflib.BNode(f"r-{patient['patient']}-{index}")
            graph.add((report, SH.result, result))
            graph.add((result, RDF.type, SH.ValidationResult))
            graph.add((result, SH.focusNode, URIRef(finding["focus"])))
            graph.add((result, SH.sourceShape, URIRef(finding["shape"])))
            graph.add((result, SH.resultSeverity, SH[finding["severity"].capitalize()]))
            graph.add((result, SH.resultMessage, Literal(finding["message"])))
            graph.add((result, SH.sourceConstraintComponent, SH.SPARQLConstraintComponent))
            entry = guideline.catalogue().get(finding["id"])
            if entry:
                graph.add((result, NKG.implements, URIRef(entry.iri)))
    return graph
