"""The guideline's namespace as rdflib terms (``neuropathy_kg.NKG``, made on first use: importing the
package does not import rdflib)."""

from rdflib import Namespace


class TermNamespace(Namespace):
    """An rdflib Namespace that builds each attribute's URIRef once: rdflib's own makes a new one, with
    IRI validation, on every access (about 2 us), which the FHIR reader did tens of times per resource."""

    def __getattr__(self, name: str):
        term = super().__getattr__(name)
        self.__dict__[name] = term
        return term


#: The one namespace of the guideline's terms (also declared in ontology/neuropathy-kg.ttl).
NKG = TermNamespace("https://w3id.org/neuropathy-kg/")
