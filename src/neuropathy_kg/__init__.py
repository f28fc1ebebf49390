"""neuropathy-kg: the guideline "Management of Relapsed Diabetic Neuropathy After IVIG" as a knowledge graph.

The clinical content lives in ``ontology/``, ``shapes/`` and ``queries/``; this package loads patient
data, runs those artefacts on an RDF engine and reports the results.
"""

from rdflib import Namespace

__version__ = "0.1.0"

#: The one namespace of the guideline's terms (also declared in ontology/neuropathy-kg.ttl).
NKG = Namespace("https://w3id.org/neuropathy-kg/")
