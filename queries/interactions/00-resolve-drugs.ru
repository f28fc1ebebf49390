# Derives: nkg:usesDrug and nkg:avoidsDrug, the drug individuals a recommendation of either guideline
#   names with nkg:recommendsUse / nkg:recommendsAvoiding: our drug itself, a code our mappings match
#   (skos:exactMatch or skos:closeMatch to an RxNorm or ATC IRI), or a drug class (then every drug in it).
# Serves: the interaction queries (contradictions, repetitions, alternatives, drug-interactions); issue 7.
PREFIX nkg:  <https://w3id.org/neuropathy-kg/>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX skos: <http://www.w3.org/2004/02/skos/core#>

INSERT { ?recommendation ?derived ?drug }
WHERE {
  VALUES (?stated ?derived) { (nkg:recommendsUse nkg:usesDrug) (nkg:recommendsAvoiding nkg:avoidsDrug) }
  ?recommendation ?stated ?target .
  OPTIONAL { ?mapped skos:exactMatch|skos:closeMatch ?target }
  BIND(COALESCE(?mapped, ?target) AS ?concept)
  ?drug a ?drugClass .
  ?drugClass rdfs:subClassOf* nkg:Drug .
  FILTER(?drug = ?concept || EXISTS { ?drugClass rdfs:subClassOf* ?concept })
}
