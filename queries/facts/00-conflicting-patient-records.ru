# Derives: nkg:contestedBirthDate / nkg:contestedSex. Two records of the same patient (Patient resources
#   with the same id, which the FHIR reader writes value by value) that give two distinct birth dates or
#   two distinct sexes cannot both be true: every contested value is moved from nkg:birthDate / nkg:sex to
#   nkg:contestedBirthDate / nkg:contestedSex, so that no rule (age, Cockcroft-Gault, renal bands, doses)
#   uses either, and shapes/data/data-conflicting-patient-records.ttl reports them. Values are compared
#   by their text (birth dates) or their lower-cased text (sex), so the same value written twice is no
#   conflict. Runs first: 01-day-numbers.ru must not number a contested birth date.
# Serves: data-conflicting-patient-records; and, by withdrawing the values, every rule reading age or sex.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>

DELETE { ?patient nkg:birthDate ?date }
INSERT { ?patient nkg:contestedBirthDate ?date }
WHERE {
  ?patient a nkg:Patient ; nkg:birthDate ?date ; nkg:birthDate ?other .
  FILTER(STR(?date) != STR(?other))
} ;

DELETE { ?patient nkg:sex ?sex }
INSERT { ?patient nkg:contestedSex ?sex }
WHERE {
  ?patient a nkg:Patient ; nkg:sex ?sex ; nkg:sex ?other .
  FILTER(LCASE(STR(?sex)) != LCASE(STR(?other)))
}
