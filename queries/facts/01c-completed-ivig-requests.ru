# Derives: nothing new; withdraws the IVIG courses the FHIR reader made from completed MedicationRequests
#   (nkg:fromCompletedRequest) whose days are covered by a course of recorded infusions (or a completed
#   statement): the administrations stand for the order, which would otherwise count twice. A completed
#   request with no such course is a given course over its bounds (fhir-input.md, second edition).
# Serves: every rule that reads given IVIG courses (response, relapse, repeat-ivig, withheld-repeat-ivig,
#   ivig-dose-off-protocol, refractory).
PREFIX nkg: <https://w3id.org/neuropathy-kg/>

DELETE { ?request ?property ?value }
WHERE {
  ?request nkg:fromCompletedRequest true ; a nkg:IvigCourse ; nkg:subject ?patient ;
           nkg:startDay ?start ; nkg:endDay ?end .
  ?given a nkg:IvigCourse ; nkg:subject ?patient ; nkg:status "given" ; nkg:startDay ?givenStart ; nkg:endDay ?givenEnd .
  FILTER NOT EXISTS { ?given nkg:fromCompletedRequest true }
  FILTER(?givenStart <= ?end && ?start <= ?givenEnd)
  ?request ?property ?value .
}
