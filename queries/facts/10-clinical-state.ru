# Derives: nkg:painNotControlled (latest pain score >= nkg:criterion-pain-not-controlled threshold),
#   nkg:severe (latest pain score >= nkg:criterion-severe-pain threshold, or latest MRC grade <=
#   nkg:criterion-severe-weakness threshold), nkg:ivigRepeated (two or more given IVIG courses: a first
#   course and at least one repeat) and nkg:refractory (IVIG repeated, pharmacotherapy optimised, and pain
#   not controlled on a score taken at least the response window's start after the last given course, so
#   that a course too recent to have worked yet does not count as failed, and the latest given course not
#   followed by a response), nkg:repeatIvigIndicated (eligible, in relapse, asymmetric phenotype, a previous
#   response, no recorded immune globulin intolerance, no course given since the relapse, and not
#   refractory: review1 D15, see docs/decisions.md) and nkg:localizedPain (the latest localized-pain record
#   says so).
# Serves: titrate-duloxetine, combination-therapy, lidocaine-patch, refer-spinal-cord-stimulation, consider-corticosteroids,
#   repeat-ivig, monitor-ivig-adverse-effects, reassess-*, assess-motor-function-1-month.
PREFIX nkg: <https://w3id.org/neuropathy-kg/>

INSERT { ?patient nkg:painNotControlled true }
WHERE {
  ?patient nkg:latestObservation ?obs .
  ?obs nkg:code nkg:pain-vas ; nkg:normalValue ?score .
  nkg:criterion-pain-not-controlled nkg:threshold ?threshold .
  FILTER(?score >= ?threshold)
} ;

INSERT { ?patient nkg:severe true }
WHERE {
  ?patient nkg:latestObservation ?obs .
  {
    ?obs nkg:code nkg:pain-vas ; nkg:normalValue ?score .
    nkg:criterion-severe-pain nkg:threshold ?threshold .
    FILTER(?score >= ?threshold)
  } UNION {
    ?obs nkg:code nkg:mrc-grade ; nkg:normalValue ?grade .
    nkg:criterion-severe-weakness nkg:threshold ?threshold .
    FILTER(?grade <= ?threshold)
  }
} ;

INSERT { ?patient nkg:ivigRepeated true ; nkg:lastCourseEndDay ?lastEnd }
WHERE {
  SELECT ?patient (MAX(?end) AS ?lastEnd)
  WHERE { ?course nkg:status "given" ; a nkg:IvigCourse ; nkg:subject ?patient ; nkg:endDay ?end . }
  GROUP BY ?patient
  HAVING (COUNT(DISTINCT ?course) >= 2)
} ;

INSERT { ?patient nkg:refractory true }
WHERE {
  ?patient nkg:eligibleForActions true ; nkg:ivigRepeated true ; nkg:lastCourseEndDay ?lastEnd ;
           nkg:optimizedPharmacotherapy true ; nkg:painNotControlled true ; nkg:latestObservation ?obs .
  ?obs nkg:code nkg:pain-vas ; nkg:day ?scoreDay .
  nkg:criterion-ivig-response nkg:windowStartDays ?from .
  FILTER(?scoreDay >= ?lastEnd + ?from)
  # The latest given course was followed by no response (second edition): a patient who responds to each
  # course and relapses again is a repeat-IVIG candidate, not refractory [2]. (MINUS, not FILTER NOT
  # EXISTS: the same here, since ?patient and ?lastEnd, the variables both sides share, are always bound
  # on the left; Oxigraph evaluates the NOT EXISTS once per solution over every given course, quadratic
  # in the chunk's patients, and MINUS as one hash join.)
  MINUS {
    ?latestCourse nkg:status "given" ; a nkg:IvigCourse ; nkg:subject ?patient ; nkg:endDay ?lastEnd ; nkg:responded true .
  }
} ;

# Repeat IVIG: for a previous responder (any course responded: the catalogue's definition) in relapse, unless
# refractory. A refractory patient's latest given course was followed by no response after IVIG was
# repeated, with pain not controlled on optimised pharmacotherapy: the catalogue sends them to
# refer-spinal-cord-stimulation / consider-corticosteroids ("responds to each course" makes a repeat-IVIG
# candidate, not refractory [2]); offering another course in the same output would contradict that.
INSERT { ?patient nkg:repeatIvigIndicated true }
WHERE {
  ?patient nkg:eligibleForActions true ; nkg:relapse true ; nkg:phenotype nkg:asymmetric-diabetic-neuropathy ;
           nkg:previousIvigResponder true ; nkg:ivigTolerated true .
  FILTER NOT EXISTS { ?patient nkg:courseSinceRelapse ?course . ?course nkg:status "given" }
  FILTER NOT EXISTS { ?patient nkg:refractory true }
} ;

# Localised pain: the latest localized-pain record (an observation by its date, a condition by its
# condition day; undated: day 0) says it is present (latest record wins); a condition counts only while
# active. Records dated after the assessment date do not count.
INSERT { ?latest nkg:latestLocalizedPainRecord true }
WHERE {
  SELECT ?patient (IRI(STRAFTER(MAX(CONCAT(IF(?day = 0, "0000000", STR(?day)), " ", STR(?record))), " ")) AS ?latest)
  WHERE {
    ?record nkg:code nkg:localized-pain ; nkg:subject ?patient .
    OPTIONAL { ?record nkg:day ?observed }
    OPTIONAL { ?record nkg:conditionDay ?recorded }
    BIND(COALESCE(?observed, ?recorded, 0) AS ?day)
    nkg:assessment nkg:assessmentDay ?today .
    FILTER(?day <= ?today)
  }
  GROUP BY ?patient
} ;

# (Two steps, as in 01b-active-conditions.ru: the computed IRI is inserted, not joined.)
INSERT { ?patient nkg:localizedPain true }
WHERE {
  ?latest nkg:latestLocalizedPainRecord true ; nkg:subject ?patient .
  FILTER NOT EXISTS { ?latest nkg:value false }
  FILTER NOT EXISTS { ?latest a nkg:ConditionRecord . FILTER NOT EXISTS { ?latest nkg:activeCondition true } }
}
