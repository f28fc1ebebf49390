# Derives: nkg:creatinineClearance (mL/min, rounded to 0.1) with nkg:clearanceMethod, and nkg:renalBand.
#   Order of precedence: a measured clearance; else Cockcroft-Gault from age, actual weight, serum
#   creatinine (mg/dL) and sex (constants on nkg:cockcroft-gault); else eGFR standing in.
#   The band is the nkg:RenalBand whose [lowerBound, upperBound) holds the rounded value. An implausible
#   age (above nkg:age's plausible maximum) gives no estimate. Rounded half up in xsd:double: the factor
#   is written 10e0, as rdflib multiplies a double by an integer in xsd:decimal, from the double's binary
#   value (87.55 x 10 = 875.4999...), and rounded four of 10,000 estimates down (docs/engine-notes.md).
# Serves: start-/titrate-pregabalin, start-gabapentin, start-duloxetine, subtherapeutic-pregabalin,
#   dose-above-maximum, missing-renal-dose-adjustment, duloxetine-in-severe-renal-impairment.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>

INSERT { ?patient nkg:creatinineClearance ?crcl ; nkg:clearanceMethod "measured" }
WHERE {
  ?patient nkg:latestObservation ?obs .
  ?obs nkg:code nkg:creatinine-clearance ; nkg:normalValue ?value .
  BIND(xsd:double(ROUND(?value * 10e0) / 10e0) AS ?crcl)
} ;

INSERT { ?patient nkg:creatinineClearance ?crcl ; nkg:clearanceMethod "cockcroft-gault" }
WHERE {
  ?patient nkg:ageYears ?age ; nkg:weightKg ?kg ; nkg:sex ?sex ; nkg:latestObservation ?obs .
  ?obs nkg:code nkg:serum-creatinine ; nkg:normalValue ?creatinine .
  nkg:age nkg:plausibleMax ?maximumAge .
  FILTER(?age <= ?maximumAge)
  FILTER(STR(?sex) IN ("female", "male"))
  FILTER NOT EXISTS { ?patient nkg:creatinineClearance ?measured }
  nkg:cockcroft-gault nkg:ageOffset ?offset ; nkg:creatinineCoefficient ?coefficient ; nkg:femaleFactor ?female .
  BIND((xsd:double(?offset) - ?age) * ?kg / (xsd:double(?coefficient) * ?creatinine)
       * IF(STR(?sex) = "female", xsd:double(?female), 1.0e0) AS ?estimate)
  BIND(xsd:double(ROUND(?estimate * 10e0) / 10e0) AS ?crcl)
} ;

INSERT { ?patient nkg:creatinineClearance ?crcl ; nkg:clearanceMethod "egfr" }
WHERE {
  ?patient nkg:latestObservation ?obs .
  ?obs nkg:code nkg:egfr ; nkg:normalValue ?value .
  FILTER NOT EXISTS { ?patient nkg:creatinineClearance ?other }
  BIND(xsd:double(ROUND(?value * 10e0) / 10e0) AS ?crcl)
} ;

INSERT { ?patient nkg:renalBand ?band }
WHERE {
  ?patient nkg:creatinineClearance ?crcl .
  ?band a nkg:RenalBand ; nkg:lowerBound ?low .
  OPTIONAL { ?band nkg:upperBound ?high }
  FILTER(?crcl >= ?low && (!BOUND(?high) || ?crcl < ?high))
}
