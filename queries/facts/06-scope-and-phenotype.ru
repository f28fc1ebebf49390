# Derives: nkg:inScope (an active diabetic neuropathy diagnosis is recorded: 01b-active-conditions.ru),
#   nkg:eligibleForActions (in scope and not recorded as deceased), and nkg:phenotype with nkg:phenotypeDay
#   and nkg:phenotypeSource ("exam", "recorded" or "ivig-response"; nkg:phenotypeInferred true for the last).
#   Phenotype evidence is an active condition coded with a phenotype (dated by its condition day) or a
#   neurologic exam whose coded value indicates one (dated by its date); undated evidence counts as day 0.
#   1. Symmetric from then on [5]: an exam showing symmetric involvement makes the patient symmetric
#      unless a later exam documents asymmetric involvement; a later condition code does not undo it
#      (codes are carried forward).
#   2. Otherwise the latest evidence wins; on the same day symmetric wins.
#   3. No evidence, and a previous IVIG response: asymmetric, inferred (Step 1 [2, 3]: the response
#      confirms the multifocal/asymmetric form); the reasoner sees it as nkg:PhenotypeInferredFromResponse.
#   No evidence and no response: phenotype unknown. (Grouped maxima rather than FILTER NOT EXISTS, which
#   Oxigraph evaluates in quadratic time.)
# Serves: every action (scope), repeat-ivig, standard-pharmacologic-management, withheld-repeat-ivig,
#   ivig-in-symmetric-polyneuropathy, data-missing-neuropathy-subtype. 07-ivig-response.ru runs later, so
#   rule 3 is written there.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>

INSERT { ?patient nkg:inScope true }
WHERE {
  ?condition a nkg:ConditionRecord ; nkg:activeCondition true ; nkg:subject ?patient ; nkg:code ?diagnosis .
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
    ?record a nkg:ConditionRecord ; nkg:activeCondition true ; nkg:code ?phenotype ; nkg:conditionDay ?day .
    ?phenotype a nkg:NeuropathyPhenotype .
  } UNION {
    ?record nkg:code nkg:neurologic-exam ; nkg:valueConcept ?finding .
    ?finding nkg:indicates ?phenotype .
    OPTIONAL { ?record nkg:day ?examined }
    BIND(COALESCE(?examined, 0) AS ?day)
  }
} ;

# 1. Symmetric from the latest symmetric exam on, unless a later exam documents asymmetric involvement.
INSERT { ?patient nkg:phenotype nkg:symmetric-diabetic-polyneuropathy ; nkg:phenotypeDay ?symmetricDay ;
         nkg:phenotypeSource "exam" }
WHERE {
  {
    SELECT ?patient (MAX(?day) AS ?symmetricDay)
    WHERE {
      ?exam nkg:code nkg:neurologic-exam ; nkg:indicatesPhenotype nkg:symmetric-diabetic-polyneuropathy ;
            nkg:subject ?patient ; nkg:evidenceDay ?day .
      nkg:assessment nkg:assessmentDay ?today .
      FILTER(?day <= ?today)
    }
    GROUP BY ?patient
  }
  OPTIONAL {
    SELECT ?patient (MAX(?day) AS ?asymmetricDay)
    WHERE {
      ?exam nkg:code nkg:neurologic-exam ; nkg:indicatesPhenotype nkg:asymmetric-diabetic-neuropathy ;
            nkg:subject ?patient ; nkg:evidenceDay ?day .
      nkg:assessment nkg:assessmentDay ?today .
      FILTER(?day <= ?today)
    }
    GROUP BY ?patient
  }
  FILTER(!BOUND(?asymmetricDay) || ?asymmetricDay <= ?symmetricDay)
} ;

# 2. Otherwise the latest evidence.
INSERT { ?patient nkg:phenotype ?phenotype ; nkg:phenotypeDay ?latestDay ; nkg:phenotypeSource "recorded" }
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
    FILTER NOT EXISTS { ?patient nkg:phenotypeSource "exam" }
    ?record nkg:indicatesPhenotype ?candidate ; nkg:subject ?patient ; nkg:evidenceDay ?latestDay .
  }
  GROUP BY ?patient ?latestDay
}
