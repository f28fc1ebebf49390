"""OWL 2 DL reasoning with owlready2 and HermiT: consistency, unsatisfiable classes, patient categories.

The patients' facts are derived first (queries/facts/), then ontology + patients go to HermiT, which
classifies each patient into the defined classes of ontology/patient-categories.ttl.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import rdflib
from rdflib import OWL, RDFS, XSD, Literal

from . import NKG, guideline
from .load import Patient, one_line
from .engine import local_name
from .pipeline import derive


class ReasonerUnavailable(Exception):
    """HermiT cannot run here (no Java, or the JVM failed); the message is one line."""


def owl_ready(graph: rdflib.Graph) -> rdflib.Graph:
    """The graph with every literal in OWL 2's datatype map (xsd:date, not in it, becomes xsd:dateTime) and
    no owl:imports, which owlready2 would try to fetch from the network (their content is merged already)."""
    ready = rdflib.Graph()
    for s, p, o in graph:
        if p == OWL.imports:  # the imported patient vocabulary is already in the graph; never fetch it
            continue
        if isinstance(o, Literal) and o.datatype == XSD.date:
            o = Literal(f"{o}T00:00:00", datatype=XSD.dateTime)
        ready.add((s, p, o))
    return ready


def categories() -> list[rdflib.URIRef]:
    """The defined patient categories (direct subclasses of nkg:PatientCategory)."""
    return sorted(guideline.ontology().subjects(RDFS.subClassOf, NKG.PatientCategory))


def run_hermit(graph: rdflib.Graph, individuals: list[str] = ()) -> tuple[bool, list[str], dict[str, set[str]]]:
    """(consistent, unsatisfiable class IRIs, individual IRI -> inferred named classes) for one graph."""
    if shutil.which("java") is None:
        raise ReasonerUnavailable("Java is not installed: the HermiT reasoner needs a Java runtime (17 or newer)")
    import owlready2

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kg.nt"
        owl_ready(graph).serialize(path, format="nt", encoding="utf-8")
        world = owlready2.World()
        onto = world.get_ontology(path.as_uri()).load(format="ntriples")
        try:
            with onto:
                owlready2.sync_reasoner_hermit(world, infer_property_values=False, debug=0)
        except owlready2.OwlReadyInconsistentOntologyError:
            return False, [], {}
        except owlready2.OwlReadyJavaError as error:
            raise ReasonerUnavailable(f"HermiT failed: {one_line(error).replace('Java error message is: ', '')}") from None
        unsatisfiable = sorted(c.iri for c in world.inconsistent_classes() if c is not owlready2.Nothing)
        inferred = {}
        for iri in individuals:  # patient data does not declare owl:NamedIndividual, so look them up
            entity = world[iri]
            if entity is not None:
                inferred[iri] = {c.iri for c in entity.INDIRECT_is_a if hasattr(c, "iri")}
        return True, unsatisfiable, inferred


def reason(patients: list[Patient], as_of: dt.date, engine: str = "oxigraph") -> dict:
    """The reason command's JSON: consistency, unsatisfiable classes, each patient's inferred categories."""
    if patients:
        graph = derive(patients, as_of, engine).to_graph()
    else:
        graph = guideline.ontology()
    consistent, unsatisfiable, inferred = run_hermit(graph, [str(p.iri) for p in patients])
    wanted = {str(c) for c in categories()}
    results = []
    for patient in patients:
        found = sorted(local_name(c) for c in inferred.get(str(patient.iri), set()) & wanted)
        results.append({"patient": patient.id, "categories": found})
    document = {"consistent": consistent, "unsatisfiable": [local_name(c) for c in unsatisfiable],
                "asOf": as_of.isoformat(), "patients": results}
    if not consistent and patients:
        document["inconsistentPatients"] = _inconsistent_patients(patients, as_of, engine)
    return document


def _inconsistent_patients(patients: list[Patient], as_of: dt.date, engine: str) -> list[str]:
    """Which patients make the knowledge graph inconsistent (each checked alone with the ontology)."""
    if not run_hermit(guideline.ontology())[0]:
        return []
    return [p.id for p in patients if not run_hermit(derive([p], as_of, engine).to_graph())[0]]

