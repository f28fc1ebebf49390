"""The guideline's artefacts: ontology, shapes and queries, found and parsed once per process.

The repository's top-level ``ontology/``, ``shapes/`` and ``queries/`` are the single source; the
package reads them where they are (an editable install) or from ``NEUROPATHY_KG_HOME``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import rdflib
from rdflib.namespace import DCTERMS, RDFS

from . import NKG

CITO = rdflib.Namespace("http://purl.org/spar/cito/")
PROV = rdflib.Namespace("http://www.w3.org/ns/prov#")


def home() -> Path:
    env = os.environ.get("NEUROPATHY_KG_HOME")
    root = Path(env) if env else Path(__file__).resolve().parents[2]
    if not (root / "ontology").is_dir():
        raise RuntimeError(
            f"cannot find the guideline's ontology/ under {root}; install from a checkout "
            "(pip install -e .) or set NEUROPATHY_KG_HOME to the checkout"
        )
    return root


def _parse_dir(folder: Path) -> rdflib.Graph:
    graph = rdflib.Graph()
    for path in sorted(folder.rglob("*.ttl")):
        graph.parse(path, format="turtle")
    return graph


@cache
def ontology() -> rdflib.Graph:
    """All of ontology/*.ttl as one graph."""
    return _parse_dir(home() / "ontology")


@cache
def ontology_ntriples() -> bytes:
    return ontology().serialize(format="nt", encoding="utf-8")


def _shapes_from(*folders: str) -> rdflib.Graph:
    graph = rdflib.Graph()
    graph.parse(home() / "shapes" / "prefixes.ttl", format="turtle")
    for folder in folders:
        graph += _parse_dir(home() / "shapes" / folder)
    return graph


@cache
def shapes() -> rdflib.Graph:
    """The patient-graph shapes: shapes/pitfalls/ and shapes/data/."""
    return _shapes_from("pitfalls", "data")


@cache
def guideline_shapes() -> rdflib.Graph:
    """The shapes the guideline graph itself must meet: shapes/guideline/."""
    return _shapes_from("guideline")


def _read_queries(folder: str, suffix: str) -> list[tuple[str, str]]:
    base = home() / "queries" / folder
    return [(p.stem, p.read_text(encoding="utf-8")) for p in sorted(base.glob(f"*{suffix}"))]


@cache
def fact_updates() -> list[tuple[str, str]]:
    """queries/facts/NN-name.ru, in stage order: the derived facts every rule shares."""
    return _read_queries("facts", ".ru")


@cache
def action_queries() -> list[tuple[str, str]]:
    """queries/actions/<catalogue-id>.rq: one SELECT per recommended action."""
    return _read_queries("actions", ".rq")


@cache
def report_query(name: str) -> str:
    """queries/report/<name>.rq: the SELECTs that read derived facts and missing data for output."""
    return (home() / "queries" / "report" / f"{name}.rq").read_text(encoding="utf-8")


def named_queries() -> dict[str, Path]:
    """Every .rq under queries/, by file stem, for `neuropathy-kg query NAME`."""
    return {p.stem: p for p in sorted((home() / "queries").rglob("*.rq"))}


@dataclass(frozen=True)
class Entry:
    """A catalogue entry (action, pitfall or data finding) as the ontology describes it."""

    id: str
    iri: str
    label: str
    citations: tuple[str, ...]
    statement: str | None
    severity: str | None = None
    kind: str = field(default="")
    order: int = 999
    rationale: str = ""


def citation_key(c: str) -> tuple[int, int | str]:
    return (0, int(c)) if c.isdigit() else (1, c)


@cache
def catalogue() -> dict[str, Entry]:
    """Catalogue id -> entry, read from the ontology (ids, labels, citations, severities)."""
    g = ontology()
    entries = {}
    for kind in ("RecommendedAction", "Pitfall", "DataFinding"):
        classes = set(g.transitive_subjects(RDFS.subClassOf, NKG[kind]))
        for cls in classes:
            for iri in g.subjects(rdflib.RDF.type, cls):
                ident = str(g.value(iri, DCTERMS.identifier))
                cites = sorted(
                    (str(g.value(src, DCTERMS.identifier)) for src in g.objects(iri, CITO.citesAsEvidence)),
                    key=citation_key,
                )
                severity = g.value(iri, NKG.severity)
                statement = g.value(iri, PROV.wasDerivedFrom)
                order = g.value(iri, NKG.catalogueOrder)
                template = g.value(iri, NKG.rationaleTemplate)
                entries[ident] = Entry(
                    id=ident,
                    iri=str(iri),
                    label=str(g.value(iri, RDFS.label)),
                    citations=tuple(cites),
                    statement=str(statement) if statement else None,
                    severity=str(severity).rsplit("#", 1)[-1].lower() if severity else None,
                    kind=kind,
                    order=int(order) if order is not None else 999,
                    rationale=str(template) if template is not None else "",
                )
    return entries


@cache
def guideline_info() -> tuple[str, str]:
    """(guideline IRI, version) as the ontology states them."""
    g = ontology()
    version = g.value(NKG.guideline, rdflib.OWL.versionInfo)
    return str(NKG.guideline), str(version)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "not recorded"


def _format(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def rationale(action_id: str, values: dict[str, object]) -> str:
    """The action's nkg:rationaleTemplate filled with the query's values ('not recorded' where absent)."""
    template = catalogue()[action_id].rationale
    return template.format_map(_Blank({k: _format(v) for k, v in values.items()}))




@cache
def interaction_queries() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """queries/interactions/: (the updates that resolve drugs, in order; the SELECTs, one per kind)."""
    return _read_queries("interactions", ".ru"), _read_queries("interactions", ".rq")
