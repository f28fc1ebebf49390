# Derives: nkg:relapse, nkg:relapseDay and nkg:relapseDate (the date of the record behind the day, if any), nkg:ivigTolerated and
#   nkg:courseSinceRelapse (nkg:repeatIvigIndicated, which needs nkg:refractory, is in 10-clinical-state.ru).
#   Relapse: a diabetic neuropathy condition with clinical status relapse or recurrence, or, after the
#   latest documented response, a pain score back above ratio x that course's baseline
#   (nkg:criterion-ivig-response). Relapse day: the earliest evidence after the latest response (the
#   first such pain score, or a relapse-status condition recorded after it, or whose onset[x] falls after
#   it); else the latest recordedDate of a relapse-status condition (never its onset, which dates the
#   disease); relapse-status conditions count only as the latest record of their code (nkg:activeCondition); else the day after the last given course (the relapse counts as after
#   it). See docs/decisions.md: the catalogue's "first such VAS" alone would date a relapse recorded
#   months before the next pain score too late and call the course given for it "withheld".
#   A course "since the relapse" is given or planned and starts on or after the relapse day; a planned
#   one only while its last day is not before the assessment date (an expired, never-given plan is none).
# Serves: every relapse action, repeat-ivig, monitor-ivig-adverse-effects, reassess-*, withheld-repeat-ivig,
#   glycemic-control-neglected, consider-plasma-exchange.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>

INSERT { ?patient nkg:latestResponseDay ?latest }
WHERE {
  SELECT ?patient (MAX(?day) AS ?latest)
  WHERE { ?course nkg:responded true ; nkg:subject ?patient ; nkg:responseDay ?day . }
  GROUP BY ?patient
} ;

INSERT { ?patient nkg:relapse true ; nkg:relapseEvidenceDay ?firstDay }
WHERE {
  SELECT ?patient (MIN(?day) AS ?firstDay)
  WHERE {
    ?patient nkg:latestResponseDay ?responseDay .
    ?course nkg:subject ?patient ; nkg:responseDay ?responseDay ; nkg:baselineVas ?baseline .
    nkg:criterion-ivig-response nkg:ratio ?ratio .
    ?obs nkg:subject ?patient ; nkg:code nkg:pain-vas ; nkg:normalValue ?value ; nkg:day ?day .
    FILTER(?day > ?responseDay && ?value > xsd:double(?ratio) * ?baseline + 1e-9)
  }
  GROUP BY ?patient
} ;

INSERT { ?patient nkg:relapse true ; nkg:relapseEvidenceDay ?evidenceDay }
WHERE {
  ?condition nkg:clinicalStatus ?status ; a nkg:ConditionRecord ; nkg:activeCondition true ; nkg:subject ?patient ;
             nkg:code ?diagnosis .
  ?diagnosis a ?class .
  VALUES ?class { nkg:DiabeticNeuropathyDiagnosis nkg:NeuropathyPhenotype }
  FILTER(STR(?status) IN ("relapse", "recurrence"))
  OPTIONAL { ?condition nkg:recordedDay ?recorded }
  OPTIONAL { ?condition nkg:onsetDay ?onset }
  OPTIONAL { ?patient nkg:latestResponseDay ?responseDay }
  # recordedDate dates the relapse when it falls after the latest response; onset[x] dates the disease and
  # counts only when it too falls after the latest response (catalogue: relapse date).
  BIND(IF(BOUND(?recorded) && ?recorded > COALESCE(?responseDay, 0), ?recorded,
          IF(BOUND(?onset) && BOUND(?responseDay) && ?onset > ?responseDay, ?onset, ?none)) AS ?evidenceDay)
} ;

INSERT { ?patient nkg:relapseDay ?firstDay }
WHERE {
  SELECT ?patient (MIN(?day) AS ?firstDay)
  WHERE { ?patient nkg:relapseEvidenceDay ?day . }
  GROUP BY ?patient
} ;

INSERT { ?patient nkg:relapseDay ?latest }
WHERE {
  SELECT ?patient (MAX(?recorded) AS ?latest)
  WHERE {
    ?condition nkg:clinicalStatus ?status ; a nkg:ConditionRecord ; nkg:activeCondition true ; nkg:subject ?patient ;
               nkg:code ?diagnosis ; nkg:recordedDay ?recorded .
    ?diagnosis a ?class .
    VALUES ?class { nkg:DiabeticNeuropathyDiagnosis nkg:NeuropathyPhenotype }
    FILTER(STR(?status) IN ("relapse", "recurrence"))
    FILTER NOT EXISTS { ?patient nkg:relapseDay ?known }
  }
  GROUP BY ?patient
} ;

INSERT { ?patient nkg:relapseDay ?dayAfter }
WHERE {
  SELECT ?patient ((MAX(?end) + 1) AS ?dayAfter)
  WHERE {
    ?patient nkg:relapse true .
    FILTER NOT EXISTS { ?patient nkg:relapseDay ?known }
    ?course nkg:status "given" ; a nkg:IvigCourse ; nkg:subject ?patient ; nkg:endDay ?end .
  }
  GROUP BY ?patient
} ;

INSERT { ?patient nkg:relapseDate ?date }
WHERE {
  SELECT ?patient (MIN(?recordDate) AS ?date)
  WHERE {
    ?patient nkg:relapseDay ?day .
    { ?record nkg:subject ?patient ; nkg:day ?day ; nkg:date ?recordDate . }
    UNION
    { ?record nkg:subject ?patient ; nkg:recordedDay ?day ; nkg:recordedDate ?recordDate . }
    UNION
    { ?record nkg:subject ?patient ; nkg:onsetDay ?day ; nkg:onsetDate ?recordDate . }
  }
  GROUP BY ?patient
} ;

INSERT { ?patient nkg:ivigTolerated true }
WHERE {
  ?patient a nkg:Patient .
  # MINUS looks the immune globulin intolerances up once; NOT EXISTS scanned every intolerance record of
  # the chunk for each patient (docs/engine-notes.md).
  # An intolerance to IVIG, or to immune globulin named without a route (hyperimmune globulins do not count).
  MINUS {
    { ?substance a nkg:ImmuneGlobulin } UNION { VALUES ?substance { nkg:immune-globulin-route-unstated } }
    ?intolerance nkg:substance ?substance ; a nkg:IntoleranceRecord ; nkg:subject ?patient .
  }
} ;

INSERT { ?patient nkg:courseSinceRelapse ?course }
WHERE {
  ?patient nkg:relapse true .
  OPTIONAL { ?patient nkg:relapseDay ?relapseDay }
  ?course a nkg:IvigCourse ; nkg:subject ?patient ; nkg:status ?status ; nkg:startDay ?start .
  FILTER(STR(?status) IN ("given", "planned") && ?start >= COALESCE(?relapseDay, 0))
  # A planned course whose days are all before the assessment date and that was not given (a completed
  # request is "given", 01c) is no current plan: it neither dates the reassessments nor answers the
  # relapse (review1 D5). Its last day: the end date, else start + infusion days - 1, else the start.
  OPTIONAL { ?course nkg:endDay ?endDay }
  OPTIONAL { ?course nkg:infusionDays ?infusionDays }
  nkg:assessment nkg:assessmentDay ?today .
  FILTER(STR(?status) = "given" || COALESCE(?endDay, ?start + ?infusionDays - 1, ?start) >= ?today)
}
