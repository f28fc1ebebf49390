# Derives: nkg:latestObservation, for each patient and observation kind the most recent observation
#   with a usable normalised value (ties on the same day: the larger record IRI, so runs are repeatable),
#   and the patient's nkg:weightKg from the latest body weight.
# Serves: creatinine clearance, pain control and severity, HbA1c rules, IVIG and steroid doses.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>

INSERT { ?patient nkg:latestObservation ?obs }
WHERE {
  ?obs nkg:subject ?patient ; nkg:code ?kind ; nkg:normalValue ?value ; nkg:day ?day .
  FILTER NOT EXISTS {
    ?other nkg:subject ?patient ; nkg:code ?kind ; nkg:normalValue ?otherValue ; nkg:day ?otherDay .
    FILTER(?otherDay > ?day || (?otherDay = ?day && STR(?other) > STR(?obs)))
  }
} ;

INSERT { ?patient nkg:weightKg ?kg }
WHERE {
  ?patient nkg:latestObservation ?obs .
  ?obs nkg:code nkg:body-weight ; nkg:normalValue ?kg .
}
