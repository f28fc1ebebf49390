"""neuropathy-kg: the guideline "Management of Relapsed Diabetic Neuropathy After IVIG" as a knowledge graph.

The clinical content lives in ``ontology/``, ``shapes/`` and ``queries/``; this package loads patient
data, runs those artefacts on an RDF engine and reports the results.

The library (neuropathy_kg.api, imported on first use so that ``import neuropathy_kg`` stays light, as
is ``NKG``, the namespace of the guideline's terms, from neuropathy_kg.terms: no rdflib until then):
``recommend(inputs, as_of=...)``, ``validate(inputs, as_of=...)``, ``query(query, inputs, as_of=...)``,
and ``InputError``, which they raise for an input that cannot be read.
"""

import logging

__version__ = "0.1.0"
__all__ = ["recommend", "validate", "query", "InputError", "NKG", "__version__"]

#: Names made on first use, from the module that defines them, so that ``import neuropathy_kg`` loads
#: none of rdflib, the pipeline or click (tests/test_package.py).
_API = {"recommend": "api", "validate": "api", "query": "api", "InputError": "load", "NKG": "terms",
        "TermNamespace": "terms"}


def __getattr__(name: str):
    if name in _API:
        from importlib import import_module

        value = getattr(import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _IllTypedLiteralFilter(logging.Filter):
    """Drops rdflib's warning, with a traceback, for every ill-typed literal it meets ("Failed to
    convert Literal lexical form to value"): the shapes report those as data findings, one line each.
    On rdflib's own logger, so that it holds for the library as for the command."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to convert Literal")


# The logger rdflib.term will use (logging.getLogger returns the same one): set before rdflib is imported.
logging.getLogger("rdflib.term").addFilter(_IllTypedLiteralFilter())


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
