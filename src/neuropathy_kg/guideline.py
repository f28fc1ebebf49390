"""The guideline's artefacts: ontology, shapes and queries, found and parsed once per process.

The repository's top-level ``ontology/``, ``shapes/`` and ``queries/`` are the single source. A built
wheel carries them as ``neuropathy_kg/artefacts/`` (mapped there at build time: pyproject.toml); an
editable install reads the checkout's folders in place; ``NEUROPATHY_KG_HOME`` overrides both.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import rdflib
from rdflib.namespace import DCTERMS, RDFS

from . import NKG

CITO = rdflib.Namespace("http://purl.org/spar/cito/")
PROV = rdflib.Namespace("http://www.w3.org/ns/prov#")


class ArtefactsNotFound(RuntimeError):
    """Neither the package nor the checkout holds the guideline's ontology/; the message is one line."""


def home() -> Path:
    """The folder holding ontology/, shapes/ and queries/: ``NEUROPATHY_KG_HOME`` if set, else the copy an
    installed wheel carries (neuropathy_kg/artefacts/, through importlib.resources), else the checkout
    an editable install runs from."""
    env = os.environ.get("NEUROPATHY_KG_HOME")
    if env:
        candidates = [Path(env)]
    else:
        # A wheel is installed as files on disk, so the Traversable is a real folder.
        candidates = [Path(str(resources.files(__package__) / "artefacts")), Path(__file__).resolve().parents[2]]
    for root in candidates:
        if (root / "ontology").is_dir() and (root / "shapes").is_dir() and (root / "queries").is_dir():
            return root
    raise ArtefactsNotFound(
        f"cannot find the guideline's ontology/, shapes/ and queries/ under {' or '.join(map(str, candidates))}; "
        "install the wheel, or a checkout (pip install -e .), or set NEUROPATHY_KG_HOME to a checkout")


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


def _format(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


#: How an absent value reads in a rationale: its date qualifier (" on {d}", ", dated {d}") goes, and the
#: value with its "latest" and its unit ("{x}%", "{x}/10", "{x} m") becomes "not recorded" - never
#: "latest not recorded m" or "HbA1c not recorded% on not recorded".
_ABSENT_DATE = r"(?:,? (?:on|dated) )\{{{key}\}}"
_ABSENT_VALUE = r"(?:latest (?:score )?)?\{{{key}\}}(?:%|/10| m\b| kg\b| mg/day\b| mL/min\b)?"


def rationale(action_id: str, values: dict[str, object]) -> str:
    """The action's nkg:rationaleTemplate filled with the query's values ('not recorded' where absent)."""
    template = catalogue()[action_id].rationale
    for key in {match.group(1) for match in re.finditer(r"\{(\w+)\}", template)} - values.keys():
        template = re.sub(_ABSENT_DATE.format(key=key), "", template)
        template = re.sub(_ABSENT_VALUE.format(key=key), "not recorded", template)
    return template.format_map({k: _format(v) for k, v in values.items()})


@cache
def interaction_queries() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """queries/interactions/: (the updates that resolve drugs, in order; the SELECTs, one per kind)."""
    return _read_queries("interactions", ".ru"), _read_queries("interactions", ".rq")
