# Derives: nkg:normalValue, each observation's value in its kind's normalised unit (ontology/concepts.ttl:
#   nkg:UnitConversion multiplier/divisor, plus nkg:offset where scales do not share a zero (HbA1c
#   mmol/mol to %), nkg:plausibleMin/Max), and nkg:dailyDoseMg for medication uses
#   and IVIG courses (nkg:daily-drug-amount conversions).
# Serves: every rule that reads a measurement or a dose. Values that do not convert, are implausible,
#   are dated after the assessment date, or are a child's (before the 18th birthday, nkg:adulthood) get none, so no rule (and no dose) ever uses them; the
#   data-unit-not-convertible, data-value-out-of-range and data-date-in-future shapes report them.
# Arithmetic is in xsd:double (Oxigraph drops non-terminating xsd:decimal divisions).
PREFIX nkg: <https://w3id.org/neuropathy-kg/>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>

INSERT { ?obs nkg:normalValue ?normal }
WHERE {
  ?obs nkg:value ?raw ; nkg:code ?kind ; nkg:day ?day .
  nkg:assessment nkg:assessmentDay ?today .
  FILTER(?day <= ?today)
  # A child's observation (dated before nkg:adulthood's windowDays from the birth date, the 18th birthday)
  # gets no normal value: the ranges and every rule (doses by weight, Cockcroft-Gault) are for adults, and
  # a child's weight must never dose the adult. Without a birth date day the record counts as an adult's.
  # (marked nkg:datedInChildhood by 01-day-numbers.ru)
  FILTER NOT EXISTS { ?obs nkg:datedInChildhood true }
  OPTIONAL { ?obs nkg:unit ?recordedUnit }
  BIND(COALESCE(STR(?recordedUnit), "") AS ?unit)
  ?conversion nkg:forConcept ?kind ; nkg:fromUnit ?unit ; nkg:multiplier ?mul ; nkg:divisor ?div .
  OPTIONAL { ?conversion nkg:offset ?offset }
  ?kind nkg:plausibleMin ?min ; nkg:plausibleMax ?max .
  BIND(xsd:double(?raw) * xsd:double(?mul) / xsd:double(?div) + xsd:double(COALESCE(?offset, 0)) AS ?normal)
  # Engine: bounds compared as xsd:double, as SPARQL promotes them; rdflib compared a NaN value with the
  # xsd:decimal bounds in Python's Decimal and raised (issue 14: NaN must be no value on both engines).
  FILTER(?normal >= xsd:double(?min) && ?normal <= xsd:double(?max))
} ;

INSERT { ?use nkg:dailyDoseMg ?mg }
WHERE {
  ?use nkg:dailyDose ?dose ; nkg:unit ?recordedUnit .
  ?conversion nkg:forConcept nkg:daily-drug-amount ; nkg:fromUnit ?unit ; nkg:multiplier ?mul ; nkg:divisor ?div .
  FILTER(STR(?recordedUnit) = ?unit)
  nkg:daily-drug-amount nkg:plausibleMin ?min ; nkg:plausibleMax ?max .
  BIND(xsd:double(?dose) * xsd:double(?mul) / xsd:double(?div) AS ?mg)
  FILTER(?mg >= xsd:double(?min) && ?mg <= xsd:double(?max))  # Engine: as above
}
