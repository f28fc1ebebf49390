# Derives: nkg:inScope (a diabetic neuropathy diagnosis is recorded), nkg:eligibleForActions (in scope
#   and not recorded as deceased), and nkg:phenotype with nkg:phenotypeDay.
#   Phenotype evidence is a condition coded with a phenotype (dated by recordedDate) or a neurologic
#   exam whose coded value indicates one (dated by its date); undated evidence counts as day 0.
#   The latest evidence wins; on the same day symmetric wins, so a patient whose exam shows symmetric
#   progression is handled as symmetric from then on [5]. No evidence: phenotype unknown. (Grouped
#   maxima rather than FILTER NOT EXISTS, which Oxigraph evaluates in quadratic time.)
# Serves: every action (scope), repeat-ivig, standard-pharmacologic-management, withheld-repeat-ivig,
#   ivig-in-symmetric-polyneuropathy, data-missing-neuropathy-subtype.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>

INSERT { ?patient nkg:inScope true }
WHERE {
  ?condition a nkg:ConditionRecord ; nkg:subject ?patient ; nkg:code ?diagnosis .
  ?diagnosis a ?class .
  VALUES ?class { nkg:DiabeticNeuropathyDiagnosis nkg:NeuropathyPhenotype }
} ;

INSERT { ?patient nkg:eligibleForActions true }
WHERE {
  ?patient nkg:inScope true .
  FILTER NOT EXISTS { ?patient nkg:deceased true }
} ;

INSERT { ?record nkg:indicatesPhenotype ?phenotype ; nkg:evidenceDay ?day }
WHERE {
  {
    ?record a nkg:ConditionRecord ; nkg:code ?phenotype .
    ?phenotype a nkg:NeuropathyPhenotype .
    OPTIONAL { ?record nkg:recordedDay ?recorded }
    BIND(COALESCE(?recorded, 0) AS ?day)
  } UNION {
    ?record nkg:code nkg:neurologic-exam ; nkg:valueConcept ?finding .
    ?finding nkg:indicates ?phenotype .
    OPTIONAL { ?record nkg:day ?examined }
    BIND(COALESCE(?examined, 0) AS ?day)
  }
} ;

INSERT { ?patient nkg:phenotype ?phenotype ; nkg:phenotypeDay ?latestDay }
WHERE {
  SELECT ?patient ?latestDay
         (IF(MAX(IF(?candidate = nkg:symmetric-diabetic-polyneuropathy, 1, 0)) = 1,
             nkg:symmetric-diabetic-polyneuropathy, nkg:asymmetric-diabetic-neuropathy) AS ?phenotype)
  WHERE {
    {
      SELECT ?patient (MAX(?day) AS ?latestDay)
      WHERE {
        ?evidence nkg:indicatesPhenotype ?any ; nkg:subject ?patient ; nkg:evidenceDay ?day .
        nkg:assessment nkg:assessmentDay ?today .
        FILTER(?day <= ?today)
      }
      GROUP BY ?patient
    }
    ?record nkg:indicatesPhenotype ?candidate ; nkg:subject ?patient ; nkg:evidenceDay ?latestDay .
  }
  GROUP BY ?patient ?latestDay
}
