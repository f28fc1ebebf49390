"""neuropathy-kg: the guideline "Management of Relapsed Diabetic Neuropathy After IVIG" as a knowledge graph.

The clinical content lives in ``ontology/``, ``shapes/`` and ``queries/``; this package loads patient
data, runs those artefacts on an RDF engine and reports the results.
"""

from rdflib import Namespace

__version__ = "0.1.0"



class TermNamespace(Namespace):
    """An rdflib Namespace that builds each attribute's URIRef once: rdflib's own makes a new one, with
    IRI validation, on every access (about 2 us), which the FHIR reader did tens of times per resource."""

    def __getattr__(self, name: str):
        term = super().__getattr__(name)
        self.__dict__[name] = term
        return term


class BoundedCache(dict):
    """Remembered results, at most ``limit`` of them: full, it empties itself before taking the next one.
    For caches looked up once per row or resource, where a hit must cost no more than a dict lookup
    (functools.lru_cache serves the others). Bounded like them, so that a worker's memory stays flat
    however many patients it sees: free text and measurements make new keys forever."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key, value):
        """Keep ``value`` under ``key`` (after emptying the cache if it is full) and return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


#: The one namespace of the guideline's terms (also declared in ontology/neuropathy-kg.ttl).
NKG = TermNamespace("https://w3id.org/neuropathy-kg/")
