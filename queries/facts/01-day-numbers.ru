# Derives: a whole-day number (Julian day number) for every xsd:date that a time rule compares,
#   and for the assessment date (nkg:assessment nkg:assessmentDate, set from --as-of); nkg:datedInChildhood
#   for records dated before the patient's 18th birthday (nkg:adulthood).
# Serves: every time rule (subtherapeutic-pregabalin's 7 days, the IVIG response window, the
#   HbA1c and monofilament look-backs, adequate trials).
# Why day numbers: date - date and comparisons of computed dates differ between rdflib and Oxigraph
#   (see docs/engine-notes.md); integers compare alike everywhere. The integer divisions are made in
#   xsd:double and each floor cast back to xsd:integer: exact for every date (tests/test_properties.py),
#   and Oxigraph divides xsd:decimal in 128-bit arithmetic, a tenth of a population run's fact stage. A malformed date gets no day
#   number (and a data-malformed-date finding from shapes/data/). A record date before the patient's birth
#   date cannot be true: its day number is withdrawn and the record marked nkg:datedBeforeBirth (reported
#   by shapes/data/data-date-before-birth.ttl), so that no rule counts from it.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>

INSERT { ?record ?dayProperty ?dayNumber }
WHERE {
  VALUES (?dateProperty ?dayProperty) {
    (nkg:date nkg:day) (nkg:recordedDate nkg:recordedDay) (nkg:onsetDate nkg:onsetDay) (nkg:startDate nkg:startDay)
    (nkg:endDate nkg:endDay) (nkg:birthDate nkg:birthDay) (nkg:assessmentDate nkg:assessmentDay)
  }
  ?record ?dateProperty ?date .
  FILTER(DATATYPE(?date) = xsd:date)
  BIND(IF(MONTH(?date) <= 2, 1, 0) AS ?a)
  BIND(YEAR(?date) + 4800 - ?a AS ?y)
  BIND(MONTH(?date) + 12 * ?a - 3 AS ?m)
  BIND(xsd:integer(DAY(?date) + xsd:integer(FLOOR((153 * ?m + 2) / 5e0)) + 365 * ?y + xsd:integer(FLOOR(?y / 4e0))
                   - xsd:integer(FLOOR(?y / 100e0)) + xsd:integer(FLOOR(?y / 400e0)) - 32045) AS ?dayNumber)
} ;

DELETE { ?record ?dayProperty ?day }
INSERT { ?record nkg:datedBeforeBirth true }
WHERE {
  VALUES ?dayProperty { nkg:day nkg:recordedDay nkg:onsetDay nkg:startDay nkg:endDay }
  ?record ?dayProperty ?day ; nkg:subject ?patient .
  # Birth days as one table joined once, not looked up in each patient's triples per record.
  { SELECT ?patient ?birthDay WHERE { ?patient nkg:birthDay ?birthDay } }
  FILTER(?day < ?birthDay)
} ;

# A record dated before the patient's 18th birthday (nkg:adulthood's windowDays after the birth day) is a
# child's: marked once here, so that 02-normal-values and data-value-out-of-range skip it by one lookup.
# Engine: birth days and the adulthood window as one table joined once (a NOT EXISTS with this join in
# each of those two places cost 2.2 and 3.7 ms a patient on Oxigraph, the whole rest of a run 1.5 ms).
INSERT { ?record nkg:datedInChildhood true }
WHERE {
  ?record nkg:day ?day ; nkg:subject ?patient .
  { SELECT ?patient ?adultDay WHERE { ?patient nkg:birthDay ?birthDay . nkg:adulthood nkg:windowDays ?adultDays .
                                      BIND(?birthDay + ?adultDays AS ?adultDay) } }
  FILTER(?day < ?adultDay)
}
