# Derives: nkg:latestObservation, for each patient and observation kind the most recent observation
#   with a usable normalised value (ties on the same day: the larger record IRI, so runs are repeatable),
#   and the patient's nkg:weightKg from the latest body weight. Written as one grouped maximum rather
#   than FILTER NOT EXISTS, which Oxigraph evaluates in time quadratic in the number of observations.
# Serves: creatinine clearance, pain control and severity, HbA1c rules, IVIG and steroid doses.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>

INSERT { ?patient nkg:latestObservation ?latest }
WHERE {
  # One grouped pass: the greatest "DAY IRI" string is the latest day's greatest IRI (day numbers all
  # have seven digits from year 1 to 22,666, so their text sorts as their value).
  SELECT ?patient ?kind (IRI(STRAFTER(MAX(CONCAT(STR(?day), " ", STR(?obs))), " ")) AS ?latest)
  WHERE { ?obs nkg:normalValue ?value ; nkg:subject ?patient ; nkg:code ?kind ; nkg:day ?day . }
  GROUP BY ?patient ?kind
} ;

INSERT { ?patient nkg:weightKg ?kg }
WHERE {
  ?patient nkg:latestObservation ?obs .
  ?obs nkg:code nkg:body-weight ; nkg:normalValue ?kg .
}
