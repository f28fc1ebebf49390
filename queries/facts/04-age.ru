# Derives: nkg:ageYears, completed years from nkg:birthDate to the assessment date.
# Serves: Cockcroft-Gault (creatinine clearance) and lidocaine-patch (65 or older counts in favour).
PREFIX nkg: <https://w3id.org/neuropathy-kg/>

INSERT { ?patient nkg:ageYears ?age }
WHERE {
  ?patient a nkg:Patient ; nkg:birthDate ?birth ; nkg:birthDay ?birthDay .
  nkg:assessment nkg:assessmentDate ?asOf ; nkg:assessmentDay ?today .
  FILTER(?birthDay <= ?today)
  BIND(YEAR(?asOf) - YEAR(?birth)
       - IF(MONTH(?asOf) < MONTH(?birth) || (MONTH(?asOf) = MONTH(?birth) && DAY(?asOf) < DAY(?birth)), 1, 0)
       AS ?age)
}
