"""This guideline beside other guideline graphs (issue 7): contradictions, repetitions, alternatives and
drug-drug interactions between their recommendations, each with both sides' citations.

The other graph speaks the linking vocabulary of ontology/interactions.ttl (nkg:recommendsUse,
nkg:recommendsAvoiding, naming drugs by our IRIs or by RxNorm/ATC IRIs); queries/interactions/ derive the
findings; this module loads the graphs, runs the queries and describes both sides from the graphs
themselves (no IRI of the other graph is ever pasted into query text).
"""

from __future__ import annotations


import rdflib
from rdflib.namespace import DCTERMS, RDFS

from . import NKG, guideline
from .engine import local_name, new_store
from .guideline import CITO
from .load import InputError, parse_rdf as _parse_rdf, read_input as _read_bytes, sniff_format

#: Query file -> the kind each of its rows is, in output order.
KINDS = {"contradictions": "contradiction", "drug-interactions": "drug-interaction", "repetitions": "repetition",
         "alternatives": "alternative"}


def read_guideline_graph(path: str) -> rdflib.Graph:
    """Another guideline's graph, as RDF (Turtle, N-Triples, JSON-LD, RDF/XML); refused like patient RDF
    where it is hostile (entity declarations, remote JSON-LD contexts)."""
    name, data = _read_bytes(path)
    fmt = sniff_format(name, data)
    if fmt.startswith("fhir"):
        raise InputError(name, "a guideline graph must be RDF (Turtle, N-Triples, JSON-LD, RDF/XML), not FHIR JSON")
    parsed = _parse_rdf(name, data, fmt)
    graph = rdflib.Graph()
    for triple in parsed.triples((None, None, None)) if isinstance(parsed, rdflib.Graph) else parsed.quads():
        graph.add(triple[:3])
    if not any(next(graph.triples((None, stance, None)), None) for stance in (NKG.recommendsUse, NKG.recommendsAvoiding)):
        raise InputError(name, "no recommendation in it (nothing uses nkg:recommendsUse or nkg:recommendsAvoiding; see docs/linking.md)")
    return graph


def _citations(graph: rdflib.Graph, node) -> list[str]:
    """A recommendation's sources by their short identifier (else label, else IRI)."""
    found = {str(graph.value(source, DCTERMS.identifier) or graph.value(source, RDFS.label) or source)
             for source in graph.objects(node, CITO.citesAsEvidence)}
    return sorted(found, key=guideline.citation_key)


def _resolved(others: list[rdflib.Graph], engine: str):
    """(a store of the guideline, the other graphs and the drugs their recommendations resolve to
    (queries/interactions/*.ru), the other graphs as one rdflib graph)."""
    store = new_store(engine)
    store.add_ntriples(guideline.ontology_ntriples())
    other = rdflib.Graph()
    for graph in others:
        other += graph
    store.add_ntriples(other.serialize(format="nt", encoding="utf-8"))
    for _name, update in guideline.interaction_queries()[0]:
        store.update(update)
    return store, other


def loadable(others: list[rdflib.Graph]) -> bytes:
    """The other graphs with the resolved drug links of both guidelines, as N-Triples for a remote store
    that already holds the guideline: there the interaction queries run unchanged (`load --guideline-graph`)."""
    store, _other = _resolved(others, "oxigraph")
    return (store.to_graph() - guideline.ontology()).serialize(format="nt", encoding="utf-8")


def interactions(others: list[rdflib.Graph], engine: str = "oxigraph") -> dict:
    """Every interaction between this guideline and the other graphs, as the command's JSON document."""
    store, other = _resolved(others, engine)
    selects = guideline.interaction_queries()[1]
    ontology, catalogue = guideline.ontology(), guideline.catalogue()
    found = []
    for name, query in sorted(selects, key=lambda item: list(KINDS).index(item[0])):
        for row in store.select(query):
            ours = catalogue[local_name(row["ours"])]
            finding = {
                "kind": KINDS[name],
                "ours": {"id": ours.id, "iri": ours.iri, "label": ours.label, "citations": list(ours.citations)},
                "theirs": {"iri": str(row["theirs"]), "label": str(other.value(row["theirs"], RDFS.label) or ""),
                           "citations": _citations(other, row["theirs"])},
                "drug": local_name(row["drug"]),
            }
            if "oursStance" in row:
                finding["ours"]["stance"] = str(row["oursStance"])
            if "theirDrug" in row:
                finding["theirDrug"] = local_name(row["theirDrug"])
            if "interaction" in row:
                finding["interaction"] = {"id": local_name(row["interaction"]), "effect": str(row["effect"]),
                                          "citations": _citations(ontology, row["interaction"])}
            found.append(finding)
    order = list(KINDS.values())
    found.sort(key=lambda f: (order.index(f["kind"]), f["ours"]["id"], f["theirs"]["iri"], f["drug"], f.get("theirDrug", "")))
    iri, version = guideline.guideline_info()
    return {"guideline": iri, "version": version, "interactions": found}

