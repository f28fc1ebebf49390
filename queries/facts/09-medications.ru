# Derives: for medication uses, nkg:current (status active, started on or before and not ended before
#   the assessment date) and nkg:adequateTrial (a first-line agent taken at or above its adequate-trial
#   daily dose, for the patient's renal band where known, else the drug's, for at least
#   nkg:criterion-adequate-trial's windowDays, counted to the end date or the assessment date).
#   For patients: nkg:onFirstLineAgent, nkg:hadAdequateTrial, nkg:onCombination (two current uses from
#   different nkg:NeuropathicPainAgent classes), nkg:optimizedPharmacotherapy (an adequate trial, or two
#   such classes overlapping for at least windowDays) and nkg:firstLineStartIndicated (eligible, in relapse
#   or of symmetric phenotype, on no first-line agent).
# Serves: start-*, titrate-*, combination-therapy, refer-spinal-cord-stimulation, consider-corticosteroids,
#   opioid-as-first-line.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>

INSERT { ?use nkg:current true }
WHERE {
  ?use a nkg:MedicationUse ; nkg:status ?status .
  FILTER(STR(?status) = "active")
  nkg:assessment nkg:assessmentDay ?today .
  OPTIONAL { ?use nkg:startDay ?start }
  OPTIONAL { ?use nkg:endDay ?end }
  FILTER(COALESCE(?start, ?today) <= ?today && COALESCE(?end, ?today) >= ?today)
} ;

INSERT { ?use nkg:adequateTrial true }
WHERE {
  ?use a nkg:MedicationUse ; nkg:subject ?patient ; nkg:drug ?drug ; nkg:status ?status ;
       nkg:dailyDoseMg ?mg ; nkg:startDay ?start .
  FILTER(STR(?status) IN ("active", "completed", "stopped", "on-hold"))
  ?drug a nkg:FirstLineAgent .
  nkg:assessment nkg:assessmentDay ?today .
  nkg:criterion-adequate-trial nkg:windowDays ?minimumDays .
  OPTIONAL { ?use nkg:endDay ?end }
  BIND(IF(COALESCE(?end, ?today) < ?today, ?end, ?today) AS ?until)
  FILTER(?until - ?start >= ?minimumDays)
  ?drugSpec a nkg:DoseSpecification ; nkg:drug ?drug ; nkg:adequateTrialDailyDose ?drugDose .
  FILTER NOT EXISTS { ?drugSpec nkg:forRenalBand ?anyBand }
  OPTIONAL {
    ?patient nkg:renalBand ?band .
    ?bandSpec a nkg:DoseSpecification ; nkg:drug ?drug ; nkg:forRenalBand ?band ; nkg:adequateTrialDailyDose ?bandDose .
  }
  FILTER(?mg >= COALESCE(?bandDose, ?drugDose))
} ;

INSERT { ?patient nkg:onFirstLineAgent true }
WHERE { ?use nkg:current true ; nkg:subject ?patient ; nkg:drug ?drug . ?drug a nkg:FirstLineAgent . } ;

INSERT { ?patient nkg:hadAdequateTrial true ; nkg:optimizedPharmacotherapy true }
WHERE { ?use nkg:adequateTrial true ; nkg:subject ?patient . } ;

INSERT { ?patient nkg:onCombination true }
WHERE {
  ?first nkg:current true ; nkg:subject ?patient ; nkg:drug ?drug1 .
  ?second nkg:subject ?patient ; nkg:current true ; nkg:drug ?drug2 .
  ?drug1 a ?class1 . ?class1 rdfs:subClassOf nkg:NeuropathicPainAgent .
  ?drug2 a ?class2 . ?class2 rdfs:subClassOf nkg:NeuropathicPainAgent .
  FILTER(?class1 != ?class2)
} ;

INSERT { ?patient nkg:optimizedPharmacotherapy true }
WHERE {
  nkg:assessment nkg:assessmentDay ?today .
  nkg:criterion-adequate-trial nkg:windowDays ?minimumDays .
  ?first a nkg:MedicationUse ; nkg:subject ?patient ; nkg:drug ?drug1 ; nkg:status ?status1 ; nkg:startDay ?start1 .
  ?second a nkg:MedicationUse ; nkg:subject ?patient ; nkg:drug ?drug2 ; nkg:status ?status2 ; nkg:startDay ?start2 .
  FILTER(STR(?status1) IN ("active", "completed", "stopped", "on-hold") && STR(?status2) IN ("active", "completed", "stopped", "on-hold"))
  ?drug1 a ?class1 . ?class1 rdfs:subClassOf nkg:NeuropathicPainAgent .
  ?drug2 a ?class2 . ?class2 rdfs:subClassOf nkg:NeuropathicPainAgent .
  FILTER(?class1 != ?class2)
  OPTIONAL { ?first nkg:endDay ?end1 }
  OPTIONAL { ?second nkg:endDay ?end2 }
  BIND(IF(COALESCE(?end1, ?today) < ?today, ?end1, ?today) AS ?until1)
  BIND(IF(COALESCE(?end2, ?today) < ?today, ?end2, ?today) AS ?until2)
  BIND(IF(?start1 > ?start2, ?start1, ?start2) AS ?overlapStart)
  BIND(IF(?until1 < ?until2, ?until1, ?until2) AS ?overlapEnd)
  FILTER(?overlapEnd - ?overlapStart >= ?minimumDays)
} ;

INSERT { ?patient nkg:firstLineStartIndicated true }
WHERE {
  ?patient nkg:eligibleForActions true .
  { ?patient nkg:relapse true } UNION { ?patient nkg:phenotype nkg:symmetric-diabetic-polyneuropathy }
  FILTER NOT EXISTS { ?patient nkg:onFirstLineAgent true }
}
