# Derives: nkg:conditionDay on every condition record (its recordedDate's day, else its onset's, else 0
#   where undated) and nkg:activeCondition true on the record that counts for its patient and code: the
#   latest one (ties on the same day: the greater record IRI, so runs are repeatable), and only where its
#   clinical status is one of nkg:criterion-active-condition's nkg:activeStatus values (or not recorded).
#   Resolved, inactive and remission records (refuted and entered-in-error ones are not read at all) count
#   for no rule, and an earlier record does not outlive a later one that says otherwise (catalogue:
#   "latest record wins", "active condition"). One grouped pass, as in 03-latest-observations.ru.
# Serves: every rule that reads a condition: scope and phenotype (06), relapse by status (08),
#   start-duloxetine, titrate-duloxetine, titrate-duloxetine-to-60, duloxetine-in-hepatic-disease,
#   address-cardiovascular-risk, screen-sleep-and-mood, lidocaine-patch.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>

INSERT { ?condition nkg:conditionDay ?day }
WHERE {
  ?condition a nkg:ConditionRecord .
  OPTIONAL { ?condition nkg:recordedDay ?recorded }
  OPTIONAL { ?condition nkg:onsetDay ?onset }
  BIND(COALESCE(?recorded, ?onset, 0) AS ?day)
} ;

# Two steps: the computed IRI is only inserted, never joined (Oxigraph joins a computed IRI in time
# quadratic in the chunk: docs/engine-notes.md).
INSERT { ?latest nkg:latestOfItsCode true }
WHERE {
  # Day numbers have seven digits from year 1 to 22,666 (0, undated, is padded), so the text sorts as the value.
  SELECT ?patient ?code (IRI(STRAFTER(MAX(CONCAT(IF(?day = 0, "0000000", STR(?day)), " ", STR(?condition))), " ")) AS ?latest)
  WHERE { ?condition nkg:conditionDay ?day ; nkg:subject ?patient ; nkg:code ?code . }
  GROUP BY ?patient ?code
} ;

INSERT { ?latest nkg:activeCondition true }
WHERE {
  ?latest nkg:latestOfItsCode true .
  OPTIONAL { ?latest nkg:clinicalStatus ?status }
  OPTIONAL { nkg:criterion-active-condition nkg:activeStatus ?active . FILTER(STR(?status) = STR(?active)) }
  FILTER(!BOUND(?status) || BOUND(?active))
}
