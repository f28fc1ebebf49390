"""FHIR R4 JSON (Bundles, lone resources, Bulk Data NDJSON) to the patient graph.

Placeholder until the FHIR reader lands (issue 3): FHIR input is refused with a clear message.
"""

from __future__ import annotations

import rdflib

from .load import InputError


def to_graph(name: str, data: bytes, ndjson: bool = False) -> rdflib.Graph:
    kind = "FHIR Bulk Data NDJSON" if ndjson else "FHIR JSON"
    raise InputError(name, f"{kind} input is not supported yet; give RDF in the patient vocabulary")
