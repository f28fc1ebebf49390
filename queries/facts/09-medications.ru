# Derives: for medication uses, nkg:current (status active, started on or before and not ended before
#   the assessment date, and not replaced by another current use: nkg:replaces, FHIR priorPrescription)
#   and nkg:adequateTrial (a first-line agent taken at or above its adequate-trial
#   daily dose, for the patient's renal band where known, else the drug's, for at least
#   nkg:criterion-adequate-trial's windowDays, counted to the end date or the assessment date).
#   Per patient and drug, one nkg:CurrentDrugDose (review1 D8, review2 #15 #16): the sum of the drug's
#   concurrent uses (every current use: overlapping periods on the assessment date; an order that a
#   current order replaces is not concurrent, nor is a stopped or ended one), with nkg:dailyDoseMg (the
#   sum of the known doses), nkg:doseComplete (every use has one), nkg:startDay/startDate (the latest
#   start: since when this total has been taken; absent where a use has no start), nkg:dailyDoseText,
#   nkg:ordersText (the orders named, where there are several), nkg:findingRecord, nkg:adequateTrial
#   (the summed dose an adequate trial since the latest start, or one of its uses an adequate trial alone)
#   and nkg:doseContraindicated (duloxetine with active hepatic disease or CrCl below its minimum), and
#   nkg:aboveMaximumDailyDose (a dose above the drug's or its renal band's maximum daily dose).
#   Every dose rule reads the CurrentDrugDose, never one use alone.
#   For patients: nkg:onFirstLineAgent, nkg:hadAdequateTrial, nkg:onCombination (two current uses from
#   different nkg:NeuropathicPainAgent classes), nkg:optimizedPharmacotherapy (an adequate trial, or two
#   such classes overlapping for at least windowDays) and nkg:firstLineStartIndicated (eligible, in relapse
#   or of symmetric phenotype, on no first-line agent).
# Serves: start-*, titrate-*, reduce-to-renal-dose, combination-therapy, refer-spinal-cord-stimulation,
#   consider-corticosteroids, opioid-as-first-line, dose-above-maximum, missing-renal-dose-adjustment,
#   subtherapeutic-*, pregabalin-above-300-no-added-benefit.
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

# Replaced: an order that a current order names as the one it replaces is not taken any more, whatever its
# status still says (the pre-state is read: in a chain A <- B <- C, both A and B go).
DELETE { ?old nkg:current true }
WHERE {
  ?new nkg:replaces ?old ; nkg:current true ; nkg:subject ?patient .
  ?old nkg:current true ; nkg:subject ?patient .
  FILTER(?new != ?old)
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
  # (The dose specifications as subqueries: joined on a bound ?drug, the pattern "?spec nkg:drug ?drug"
  # was matched against every use and dose of that drug in the chunk, for each dose: quadratic.)
  {
    SELECT ?drug ?drugDose
    WHERE {
      ?drugSpec a nkg:DoseSpecification ; nkg:drug ?drug ; nkg:adequateTrialDailyDose ?drugDose .
      FILTER NOT EXISTS { ?drugSpec nkg:forRenalBand ?anyBand }
    }
  }
  OPTIONAL {
    ?patient nkg:renalBand ?band .
    {
      SELECT ?drug ?band ?bandDose
      WHERE { ?bandSpec a nkg:DoseSpecification ; nkg:drug ?drug ; nkg:forRenalBand ?band ; nkg:adequateTrialDailyDose ?bandDose . }
    }
  }
  FILTER(?mg >= COALESCE(?bandDose, ?drugDose))
} ;

# One current daily dose per patient and drug: the sum of the concurrent uses.
INSERT {
  ?patient nkg:currentDrugDose ?dose .
  ?dose a nkg:CurrentDrugDose ; nkg:drug ?drug ; nkg:orderCount ?orders ; nkg:dailyDoseMg ?mg ;
        nkg:doseComplete ?complete ; nkg:startDay ?since ; nkg:ordersText "" .
}
WHERE {
  {
    # Engine: COALESCE, as Oxigraph makes the SUM or MAX of a group with an unbound value unbound (rdflib
    #   skips it); ?dosed and ?dated say whether every use had one.
    SELECT ?patient ?drug (COUNT(DISTINCT ?use) AS ?orders) (COUNT(?useMg) AS ?dosed) (SUM(COALESCE(?useMg, 0e0)) AS ?sum)
           (COUNT(?start) AS ?dated) (MAX(COALESCE(?start, 0)) AS ?latestStart)
    WHERE {
      ?use nkg:current true ; nkg:subject ?patient ; nkg:drug ?drug .
      OPTIONAL { ?use nkg:dailyDoseMg ?useMg }
      OPTIONAL { ?use nkg:startDay ?start }
    }
    GROUP BY ?patient ?drug
  }
  BIND(IRI(CONCAT(STR(?patient), "/current-daily-dose/", REPLACE(STR(?drug), "^.*[/#]", ""))) AS ?dose)
  BIND(IF(?dosed > 0, ?sum, ?unknown) AS ?mg)
  BIND(IF(?dosed = ?orders, true, ?unknown) AS ?complete)
  BIND(IF(?dated = ?orders, ?latestStart, ?unknown) AS ?since)
} ;

INSERT { ?dose nkg:includesUse ?use }
WHERE {
  ?patient nkg:currentDrugDose ?dose . ?dose nkg:drug ?drug .
  ?use nkg:current true ; nkg:subject ?patient ; nkg:drug ?drug .
} ;

# The record a finding points to: the one use, or the summed dose where there are several.
INSERT { ?dose nkg:findingRecord ?record ; nkg:startDate ?startDate }
WHERE {
  ?dose nkg:orderCount ?orders ; nkg:includesUse ?use .
  # (?dose nkg:includesUse ?use again inside: alone, the OPTIONAL joined doses and uses on the start day
  # across the chunk's patients before it met the left side.)
  OPTIONAL { ?dose nkg:includesUse ?use ; nkg:startDay ?since . ?use nkg:startDay ?since ; nkg:startDate ?startDate }
  BIND(IF(?orders = 1, ?use, ?dose) AS ?record)
} ;

# Doses as messages write them (review2 #8: '300', not '300.0'): whole numbers without a point, others to
# at most two decimals, from the hundredths' digits (no double-to-decimal cast: Oxigraph's is inexact).
INSERT { ?holder nkg:dailyDoseText ?text }
WHERE {
  { ?holder nkg:current true ; nkg:dailyDoseMg ?mg . } UNION { ?holder a nkg:CurrentDrugDose ; nkg:dailyDoseMg ?mg . }
  BIND(REPLACE(STR(ROUND(?mg * 100)), "\\.0$", "") AS ?digits)
  BIND(IF(STRLEN(?digits) < 3, SUBSTR(CONCAT("00", ?digits), STRLEN(?digits)), ?digits) AS ?padded)
  BIND(SUBSTR(?padded, 1, STRLEN(?padded) - 2) AS ?whole)
  BIND(REPLACE(SUBSTR(?padded, STRLEN(?padded) - 1), "0+$", "") AS ?fraction)
  OPTIONAL { ?holder a nkg:CurrentDrugDose . FILTER NOT EXISTS { ?holder nkg:doseComplete true } BIND("at least " AS ?least) }
  BIND(CONCAT(COALESCE(?least, ""), IF(?fraction = "", ?whole, CONCAT(?whole, ".", ?fraction))) AS ?text)
} ;

# Several concurrent orders: each named with its dose (nkg:orderLabel) and ranked by that label (then by
# IRI), and the dose's nkg:ordersText built from the ranks, so that both engines write the same text on
# every run. (Not GROUP_CONCAT over a sorted subquery: rdflib does not keep that order from run to run.)
# The first three are named; more are counted.
INSERT { ?use nkg:orderLabel ?label }
WHERE {
  ?patient nkg:currentDrugDose ?dose . ?dose nkg:orderCount ?orders ; nkg:includesUse ?use .
  FILTER(?orders > 1)
  OPTIONAL { ?use nkg:dailyDoseText ?useText }
  BIND(CONCAT(STR(?patient), "/") AS ?base)
  BIND(IF(STRSTARTS(STR(?use), ?base), STRAFTER(STR(?use), ?base), REPLACE(STR(?use), "^.*[/#]", "")) AS ?name)
  BIND(CONCAT(?name, " ", IF(BOUND(?useText), CONCAT(?useText, " mg/day"), "dose unknown")) AS ?label)
} ;

INSERT { ?use nkg:orderRank ?rank }
WHERE {
  SELECT ?use (COUNT(?other) AS ?rank)
  WHERE {
    ?dose nkg:includesUse ?use . ?use nkg:orderLabel ?label .
    OPTIONAL {
      ?dose nkg:includesUse ?other . ?other nkg:orderLabel ?otherLabel .
      FILTER(?otherLabel < ?label || (?otherLabel = ?label && STR(?other) < STR(?use)))
    }
  }
  GROUP BY ?use
} ;

DELETE { ?dose nkg:ordersText "" }
INSERT { ?dose nkg:ordersText ?text }
WHERE {
  ?dose nkg:orderCount ?orders ; nkg:includesUse ?first . ?first nkg:orderRank 0 ; nkg:orderLabel ?label0 .
  ?dose nkg:includesUse ?second . ?second nkg:orderRank 1 ; nkg:orderLabel ?label1 .
  OPTIONAL { ?dose nkg:includesUse ?third . ?third nkg:orderRank 2 ; nkg:orderLabel ?label2 . }
  BIND(CONCAT(?label0, " + ", ?label1, IF(BOUND(?label2), CONCAT(" + ", ?label2), ""),
              IF(?orders > 3, CONCAT(" + ", STR(?orders - 3), " more"), "")) AS ?list)
  BIND(CONCAT(" (the sum of ", STR(?orders), " concurrent orders: ", ?list, ")") AS ?text)
} ;

# The summed dose is an adequate trial when it has been at or above the adequate-trial dose since its
# latest start for the window, or when one of its uses was an adequate trial alone (the sum is at least it).
INSERT { ?dose nkg:adequateTrial true }
WHERE {
  ?patient nkg:currentDrugDose ?dose .
  ?dose nkg:drug ?drug ; nkg:doseComplete true ; nkg:dailyDoseMg ?mg ; nkg:startDay ?since .
  ?drug a nkg:FirstLineAgent .
  nkg:assessment nkg:assessmentDay ?today .
  nkg:criterion-adequate-trial nkg:windowDays ?minimumDays .
  FILTER(?today - ?since >= ?minimumDays)
  # (The dose specifications as subqueries: joined on a bound ?drug, the pattern "?spec nkg:drug ?drug"
  # was matched against every use and dose of that drug in the chunk, for each dose: quadratic.)
  {
    SELECT ?drug ?drugDose
    WHERE {
      ?drugSpec a nkg:DoseSpecification ; nkg:drug ?drug ; nkg:adequateTrialDailyDose ?drugDose .
      FILTER NOT EXISTS { ?drugSpec nkg:forRenalBand ?anyBand }
    }
  }
  OPTIONAL {
    ?patient nkg:renalBand ?band .
    {
      SELECT ?drug ?band ?bandDose
      WHERE { ?bandSpec a nkg:DoseSpecification ; nkg:drug ?drug ; nkg:forRenalBand ?band ; nkg:adequateTrialDailyDose ?bandDose . }
    }
  }
  FILTER(?mg >= COALESCE(?bandDose, ?drugDose))
} ;

INSERT { ?dose nkg:adequateTrial true }
WHERE { ?dose a nkg:CurrentDrugDose ; nkg:includesUse ?use . ?use nkg:adequateTrial true . } ;

# Duloxetine where it should not be taken (the conditions of duloxetine-in-hepatic-disease and
# duloxetine-in-severe-renal-impairment; start-duloxetine and titrate-duloxetine* withhold it alike).
INSERT { ?dose nkg:doseContraindicated true }
WHERE {
  ?patient nkg:currentDrugDose ?dose . ?dose nkg:drug nkg:duloxetine .
  nkg:dose-duloxetine nkg:minimumClearance ?minimumClearance .
  OPTIONAL { ?h nkg:subject ?patient ; nkg:code nkg:hepatic-disease ; nkg:activeCondition true }
  OPTIONAL { ?patient nkg:creatinineClearance ?crcl }
  FILTER(BOUND(?h) || (BOUND(?crcl) && ?crcl < ?minimumClearance))
} ;

# A current dose above a maximum daily dose (ontology/drugs.ttl): the drug's own, or that of the patient's
# renal band; the maxima dose-above-maximum reports. Such a dose is to be lowered first, so no combination
# is built on it (combination-therapy). (The dose specifications as subqueries, as above: not matched
# against every dose of the drug.)
INSERT { ?dose nkg:aboveMaximumDailyDose true }
WHERE {
  ?patient nkg:currentDrugDose ?dose .
  ?dose nkg:drug ?drug ; nkg:dailyDoseMg ?mg .
  {
    { SELECT ?drug ?max WHERE { ?spec a nkg:DoseSpecification ; nkg:drug ?drug ; nkg:maxDailyDose ?max . FILTER NOT EXISTS { ?spec nkg:forRenalBand ?anyBand } } }
  } UNION {
    ?patient nkg:renalBand ?band .
    { SELECT ?drug ?band ?max WHERE { ?spec a nkg:DoseSpecification ; nkg:drug ?drug ; nkg:forRenalBand ?band ; nkg:maxDailyDose ?max . } }
  }
  FILTER(?mg > ?max)
} ;

INSERT { ?patient nkg:onFirstLineAgent true }
WHERE { ?use nkg:current true ; nkg:subject ?patient ; nkg:drug ?drug . ?drug a nkg:FirstLineAgent . } ;

INSERT { ?patient nkg:hadAdequateTrial true ; nkg:optimizedPharmacotherapy true }
WHERE { { ?use nkg:adequateTrial true ; nkg:subject ?patient . } UNION { ?patient nkg:currentDrugDose ?dose . ?dose nkg:adequateTrial true . } } ;

INSERT { ?patient nkg:onCombination true }
WHERE {
  ?first nkg:current true ; nkg:subject ?patient ; nkg:drug ?drug1 .
  ?second nkg:subject ?patient ; nkg:current true ; nkg:drug ?drug2 .
  ?drug1 a ?class1 . ?class1 rdfs:subClassOf nkg:NeuropathicPainAgent .
  ?drug2 a ?class2 . ?class2 rdfs:subClassOf nkg:NeuropathicPainAgent .
  FILTER(?class1 != ?class2)
} ;

# (Each use's class and interval first, then the pairs of one patient's uses joined on ?patient: the
# pairs matched straight from the triples cost 3x more on Oxigraph, each use's patient giving all its
# records to filter.)
INSERT { ?patient nkg:optimizedPharmacotherapy true }
WHERE {
  nkg:criterion-adequate-trial nkg:windowDays ?minimumDays .
  {
    SELECT ?patient ?class1 ?start1 ?until1
    WHERE {
      nkg:assessment nkg:assessmentDay ?today .
      ?first a nkg:MedicationUse ; nkg:subject ?patient ; nkg:drug ?drug1 ; nkg:status ?status1 ; nkg:startDay ?start1 .
      FILTER(STR(?status1) IN ("active", "completed", "stopped", "on-hold"))
      ?drug1 a ?class1 . ?class1 rdfs:subClassOf nkg:NeuropathicPainAgent .
      OPTIONAL { ?first nkg:endDay ?end1 }
      BIND(IF(COALESCE(?end1, ?today) < ?today, ?end1, ?today) AS ?until1)
    }
  }
  {
    SELECT ?patient ?class2 ?start2 ?until2
    WHERE {
      nkg:assessment nkg:assessmentDay ?today .
      ?second a nkg:MedicationUse ; nkg:subject ?patient ; nkg:drug ?drug2 ; nkg:status ?status2 ; nkg:startDay ?start2 .
      FILTER(STR(?status2) IN ("active", "completed", "stopped", "on-hold"))
      ?drug2 a ?class2 . ?class2 rdfs:subClassOf nkg:NeuropathicPainAgent .
      OPTIONAL { ?second nkg:endDay ?end2 }
      BIND(IF(COALESCE(?end2, ?today) < ?today, ?end2, ?today) AS ?until2)
    }
  }
  FILTER(?class1 != ?class2)
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
