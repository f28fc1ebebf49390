# Derives: per given IVIG course its nkg:baselineVas (last pain score on or before its first day) and
#   nkg:responded with nkg:responseDay (a course may collect several response days; rules use the
#   earliest or latest as they need). A course responded when
#     - an ivig-response observation states true (for the course it names with nkg:course, else for the
#       latest given course that ended on or before the statement), or
#     - a pain score taken windowStartDays..windowEndDays after its last day is at most ratio x baseline, or
#     - an MRC value of the same kind in that window is above the last one on or before its first day,
#   unless the latest ivig-response statement about that course states false (latest record wins: a
#   stated response is withdrawn by a later statement of no response, and the other way round).
#   Unknown subtype + a previous response: the asymmetric phenotype, inferred (end of this file).
#   Window and ratio: nkg:criterion-ivig-response. Then nkg:previousIvigResponder for the patient.
# Serves: repeat-ivig, consider-plasma-exchange, withheld-repeat-ivig, relapse (08-relapse.ru).
# The 1e-9 slack keeps "at most 70%" exact at the boundary in binary floating point.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>

INSERT { ?course nkg:baselineVas ?baseline }
WHERE {
  {
    SELECT ?course ?patient (MAX(?day) AS ?baselineDay)
    WHERE {
      ?course nkg:status "given" ; a nkg:IvigCourse ; nkg:subject ?patient ; nkg:startDay ?start .
      ?candidate nkg:subject ?patient ; nkg:code nkg:pain-vas ; nkg:normalValue ?anyValue ; nkg:day ?day .
      FILTER(?day <= ?start)
    }
    GROUP BY ?course ?patient
  }
  ?obs nkg:subject ?patient ; nkg:code nkg:pain-vas ; nkg:day ?baselineDay ; nkg:normalValue ?baseline .
  # Several scores on the baseline day: the one with the greatest IRI, so that the choice is repeatable.
  # (Not IRI(MAX(STR(?obs))) joined back to its value: Oxigraph joins a computed IRI in time quadratic
  # in the chunk; docs/engine-notes.md.)
  OPTIONAL {
    ?later nkg:subject ?patient ; nkg:code nkg:pain-vas ; nkg:day ?baselineDay ; nkg:normalValue ?laterValue .
    FILTER(STR(?later) > STR(?obs))
  }
  FILTER(!BOUND(?later))
} ;

# Which course a stated response is about: the one it names with nkg:course, else the latest given course
# that ended on or before the statement.
INSERT { ?statement nkg:statedFor ?course }
WHERE {
  ?statement nkg:code nkg:ivig-response ; nkg:course ?course ; nkg:value ?stated .
  ?course a nkg:IvigCourse ; nkg:status "given" .
} ;

INSERT { ?statement nkg:statedFor ?course }
WHERE {
  ?statement nkg:code nkg:ivig-response ; nkg:subject ?patient ; nkg:value ?stated ; nkg:day ?day .
  FILTER NOT EXISTS { ?statement nkg:course ?named }
  ?course a nkg:IvigCourse ; nkg:subject ?patient ; nkg:status "given" ; nkg:endDay ?end .
  FILTER(?end <= ?day)
  FILTER NOT EXISTS {
    ?laterCourse a nkg:IvigCourse ; nkg:subject ?patient ; nkg:status "given" ; nkg:endDay ?laterEnd .
    FILTER(?laterEnd <= ?day && ?laterEnd > ?end)
  }
} ;

# Latest record wins: a statement counts unless a later statement about the same course says otherwise.
INSERT { ?statement nkg:latestStatement true }
WHERE {
  ?statement nkg:statedFor ?course ; nkg:value ?stated .
  OPTIONAL { ?statement nkg:day ?day }
  FILTER NOT EXISTS {
    ?later nkg:statedFor ?course ; nkg:value ?other ; nkg:day ?laterDay .
    FILTER(?other != ?stated && ?laterDay > COALESCE(?day, 0))
  }
} ;

INSERT { ?course nkg:responded true ; nkg:responseDay ?day }
WHERE {
  ?statement nkg:statedFor ?course ; nkg:latestStatement true ; nkg:value true ; nkg:day ?day .
} ;

INSERT { ?course nkg:statedNoResponse true }
WHERE { ?statement nkg:statedFor ?course ; nkg:latestStatement true ; nkg:value false . } ;

INSERT { ?course nkg:responded true ; nkg:responseDay ?day }
WHERE {
  ?course nkg:baselineVas ?baseline ; a nkg:IvigCourse ; nkg:subject ?patient ; nkg:status "given" ; nkg:endDay ?end .
  nkg:criterion-ivig-response nkg:ratio ?ratio ; nkg:windowStartDays ?from ; nkg:windowEndDays ?to .
  ?obs nkg:subject ?patient ; nkg:code nkg:pain-vas ; nkg:normalValue ?value ; nkg:day ?day .
  FILTER(?day >= ?end + ?from && ?day <= ?end + ?to)
  FILTER(?value <= xsd:double(?ratio) * ?baseline + 1e-9)
  FILTER NOT EXISTS { ?course nkg:statedNoResponse true }
} ;

INSERT { ?course nkg:responded true ; nkg:responseDay ?day }
WHERE {
  VALUES ?mrcKind { nkg:mrc-sum-score nkg:mrc-grade }
  ?course nkg:status "given" ; a nkg:IvigCourse ; nkg:subject ?patient ; nkg:startDay ?start ; nkg:endDay ?end .
  nkg:criterion-ivig-response nkg:windowStartDays ?from ; nkg:windowEndDays ?to .
  ?before nkg:subject ?patient ; nkg:code ?mrcKind ; nkg:normalValue ?baseline ; nkg:day ?baseDay .
  FILTER(?baseDay <= ?start)
  FILTER NOT EXISTS {
    ?later nkg:subject ?patient ; nkg:code ?mrcKind ; nkg:normalValue ?laterValue ; nkg:day ?laterDay .
    FILTER(?laterDay <= ?start && (?laterDay > ?baseDay || (?laterDay = ?baseDay && STR(?later) > STR(?before))))
  }
  ?after nkg:subject ?patient ; nkg:code ?mrcKind ; nkg:normalValue ?value ; nkg:day ?day .
  FILTER(?day >= ?end + ?from && ?day <= ?end + ?to && ?value > ?baseline)
  FILTER NOT EXISTS { ?course nkg:statedNoResponse true }
} ;

INSERT { ?patient nkg:previousIvigResponder true }
WHERE { ?course nkg:responded true ; a nkg:IvigCourse ; nkg:subject ?patient . }
 ;

# Unknown subtype + previous response = asymmetric, inferred (06-scope-and-phenotype.ru, rule 3; Step 1
# [2, 3]). Only for a patient in scope: IVIG for a neuropathy outside it says nothing about a subtype.
INSERT { ?patient nkg:phenotype nkg:asymmetric-diabetic-neuropathy ; nkg:phenotypeSource "ivig-response" ;
         nkg:phenotypeInferred true }
WHERE {
  ?patient nkg:previousIvigResponder true ; nkg:inScope true .
  FILTER NOT EXISTS { ?patient nkg:phenotype ?known }
}
