"""`neuropathy-kg serve`: the guideline as a CDS Hooks 2.0 service and a FHIR `PlanDefinition/$apply`.

Endpoints (FastAPI, served by uvicorn; CORS open, as CDS Hooks sandboxes call from the browser):
- ``GET /cds-services``: discovery, a ``patient-view`` and an ``order-select`` service, each with the
  prefetch templates for every resource type the FHIR reader takes (fhir.py);
- ``POST /cds-services/{id}``: cards. patient-view: a card per finding of validate (violations critical,
  warnings warning, infos info) and per derived action (info) with a suggestion to create the proposed
  request of the $apply result (apply.py), which first stops (update, status stopped) the patient's
  current order of the same drug: a dose change never adds a second order. order-select: the draft orders of ``context.draftOrders``
  are taken as the patient's current medication, next to the active orders (the rules sum a drug's
  concurrent orders into one daily dose, unless a draft's priorPrescription names the order it replaces:
  review2 entry 15), and the cards are the pitfalls that appear only with
  them (a pregabalin order above the renal band's maximum, IVIG in the symmetric phenotype);
- ``POST /cds-services/{id}/feedback``: accepted and kept in memory (the last ``FEEDBACK_KEPT``);
- ``POST /PlanDefinition/$apply``: FHIR Parameters (subject, data Bundle, optional asOf) -> the Bundle of
  `recommend --format fhir` for the subject.

Data: the request's prefetch; what is not there is read from ``fhirServer`` with the
``fhirAuthorization`` bearer token (httpx, a timeout, Bundle ``next`` links followed at most
``MAX_PAGES`` times and only on the same server); neither: HTTP 412. A malformed request (a Bundle
whose entry is not a list, a prefetch Patient other than the context's) is a 400 with a one-line
message; a body over NEUROPATHY_KG_MAX_REQUEST_MB a 413, as soon as the upload passes it. The guideline is loaded once at start-up; each request runs the pipeline (Oxigraph,
compiled shapes) on its one patient in a worker thread, so the event loop keeps serving.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request), which are
# local to create_app, when it defines them.
import asyncio
import collections
import datetime as dt
import gc
import json
import os
import re
import uuid
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import msgspec
import orjson

from . import NKG, BoundedCache, __version__, fhir, guideline
from .apply import PROJECT_CODES, REPLACES_NOTE, leaf_actions, plan, recommend_patient_bundle, request_id
from .load import InputError, one_line, read_resources

#: CDS Hooks prefetch templates: every resource type the FHIR reader reads, for the patient in context.
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "medicationAdministrations": "MedicationAdministration?patient={{context.patientId}}",
    "allergies": "AllergyIntolerance?patient={{context.patientId}}",
    "procedures": "Procedure?patient={{context.patientId}}",
}
SERVICES = {
    "patient-view": {"hook": "patient-view", "title": "Relapsed diabetic neuropathy after IVIG",
                     "description": "The guideline's recommended actions (doses, due dates) and its pitfalls for this patient."},
    "order-select": {"hook": "order-select", "title": "Relapsed diabetic neuropathy after IVIG: order check",
                     "description": "Checks draft medication orders against the guideline's pitfalls (renal dose maxima, "
                                    "IVIG in symmetric polyneuropathy, ...)."},
}
INDICATOR = {"violation": "critical", "warning": "warning", "info": "info"}
#: The card summary limit of CDS Hooks 2.0 and the override reasons offered (cds_hooks_conventions.json).
CONVENTIONS = json.loads(Path(__file__).with_name("cds_hooks_conventions.json").read_text(encoding="utf-8"))
OVERRIDE_REASONS = [{"system": CONVENTIONS["overrideReasonSystem"], **reason} for reason in CONVENTIONS["overrideReasons"]]
SUMMARY_LIMIT = CONVENTIONS["summaryMaxLength"]
FHIR_ID = re.compile(r"[A-Za-z0-9.-]{1,64}")
MAX_PAGES = 20
FETCH_TIMEOUT = 10.0
FEEDBACK_KEPT = 10_000
#: Requests whose JSON, patient and pipeline are worked on at once (the GIL lets about one run at a time).
WORKERS = 4
AS_OF_EXTENSION = "neuropathy-kg.asOf"
#: The default request body limit in MB: a generous bound on one patient's prefetch (carmen's is 9 kB;
#: the largest Synthea bundle of ../shared/data/synthea, decades of records, is 9.0 MB).
DEFAULT_MAX_REQUEST_MB = 32


class BadRequest(Exception):
    """A request the service cannot act on: its status and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ServeError(Exception):
    """The service cannot start (its address cannot be listened on): a one-line reason."""


# ---------------------------------------------------------------- discovery

def discovery() -> dict:
    return {"services": [{**service, "id": sid, "prefetch": PREFETCH} for sid, service in SERVICES.items()]}


# ---------------------------------------------------------------- request checks

def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(400, f"{what} must be a JSON object")
    return value


def parse_json(body: bytes) -> dict:
    try:
        return _object(orjson.loads(body), "the request body")
    except orjson.JSONDecodeError as error:
        raise BadRequest(400, f"the request body is not JSON ({one_line(error)})") from None


class _Entry(msgspec.Struct):
    resource: msgspec.Raw = msgspec.Raw()


class _Value(msgspec.Struct):
    resourceType: str
    entry: list[_Entry] = []


#: A resource's HEAD_FIELDS (fhir.may_be_read), decoded by msgspec, which scans the rest of the resource
#: without making Python objects of it; its code elements are left as JSON text.
_Head = msgspec.defstruct("_Head", [("resourceType", str)] + [
    (name, msgspec.Raw, msgspec.Raw()) if name in fhir.CODE_ELEMENTS else (name, object, None)
    for name in fhir.HEAD_FIELDS if name != "resourceType"])
_CODES = tuple(name for name in fhir.HEAD_FIELDS if name in fhir.CODE_ELEMENTS)
_OTHERS = tuple(name for name in fhir.HEAD_FIELDS if name not in fhir.CODE_ELEMENTS and name != "resourceType")


class _HeadEntry(msgspec.Struct):
    resource: _Head  # required: an entry without a resource is malformed (the whole parse says so)


class _Heads(msgspec.Struct):
    """A Bundle's entries, their resources' heads only: one decoder call for the whole Bundle."""
    entry: list[_HeadEntry] = []


class _Body(msgspec.Struct):
    """A hook request's fields (CDS Hooks 2.0), the prefetch values left as JSON text; other fields,
    which the service does not read, are skipped."""
    hook: object = msgspec.UNSET
    hookInstance: object = msgspec.UNSET
    fhirServer: object = msgspec.UNSET
    fhirAuthorization: object = msgspec.UNSET
    context: object = msgspec.UNSET
    prefetch: dict[str, msgspec.Raw] | None | msgspec.UnsetType = msgspec.UNSET
    extension: object = msgspec.UNSET


_BODY = msgspec.json.Decoder(_Body)
_VALUE = msgspec.json.Decoder(_Value)
_HEADS = msgspec.json.Decoder(_Heads)
#: (resourceType, its code elements' JSON text) -> fhir.may_be_read, for heads whose other fields are no
#: strings (a plain-code status is STU3: decided each time): exports repeat the same codes thousands of times.
_READ = BoundedCache(50_000)
#: Whether the head's fields are those _selection's cache key stands for (a code element and two statuses).
_PLAIN = len(_CODES) == 1 and _OTHERS == ("id", "clinicalStatus", "verificationStatus")


def _may_be_read(head) -> bool:
    values = {name: getattr(head, name) for name in _OTHERS}
    values["resourceType"] = head.resourceType
    for name in _CODES:
        values[name] = bytes(getattr(head, name)) or None
    return fhir.may_be_read(values)


def _selection(heads: list) -> list[bool]:
    """fhir.read_selection of msgspec heads, remembered per resource type and code (one loop: this runs
    for each of a Synthea record's thousands of resources)."""
    read, chosen, keys = _READ, [], []
    get, keep, key_of = read.get, chosen.append, keys.append
    for head in heads:
        kind = head.resourceType
        key_of((kind, head.id))
        # msgspec decodes a JSON string as a str exactly: a status that is one is STU3 (decided each time)
        if _PLAIN and head.clinicalStatus.__class__ is not str and head.verificationStatus.__class__ is not str:
            key = (kind, bytes(head.code))
            known = get(key)
            if known is None:
                known = read.remember(key, _may_be_read(head))
        else:
            known = _may_be_read(head)
        keep(known)
    return fhir.with_copies(keys, chosen)


def _readable_value(raw) -> dict:
    """One prefetch value: a resource whole, or a Bundle reduced to the entries fhir.read_selection keeps
    (only those are parsed: the others are scanned, never made into Python objects)."""
    value = _VALUE.decode(raw)
    if value.resourceType != "Bundle":
        return orjson.loads(memoryview(raw))
    chosen = _selection([entry.resource for entry in _HEADS.decode(raw).entry])
    loads = orjson.loads
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": loads(memoryview(entry.resource))} for entry, keep in zip(value.entry, chosen) if keep]}


def _is_null(raw) -> bool:
    """Whether a Raw JSON value is null (a few bytes at most: not the copy of a megabyte Bundle)."""
    return len(raw) <= 64 and bytes(raw).strip() == b"null"


def parse_hook_body(body: bytes) -> dict:
    """A hook request as parse_json gives it, but each prefetch Bundle holding only the resources the FHIR
    reader may read (fhir.may_be_read: its types, and coded records whose code the ontology knows).
    msgspec scans the resources and decodes only their heads; the kept ones are parsed by orjson. A body
    not shaped so (no JSON, a prefetch value without resourceType, an entry without resource, ...) is
    parsed whole and checked as before, so that its 400 names what is wrong."""
    try:
        top = _BODY.decode(body)
        parsed = {name: getattr(top, name) for name in top.__struct_fields__ if getattr(top, name) is not msgspec.UNSET}
        if isinstance(top.prefetch, dict):
            parsed["prefetch"] = {key: None if _is_null(value) else _readable_value(value)
                                  for key, value in top.prefetch.items()}
        return parsed
    except (msgspec.DecodeError, msgspec.ValidationError, orjson.JSONDecodeError, TypeError):
        return parse_json(body)


def check_hook_request(service_id: str, body: dict) -> dict:
    """The request's context, after the checks CDS Hooks 2.0 asks of every hook request."""
    hook = SERVICES[service_id]["hook"]
    if body.get("hook") != hook:
        raise BadRequest(400, f"hook must be {hook!r} for service {service_id!r}, not {body.get('hook')!r}")
    if not isinstance(body.get("hookInstance"), str) or not body["hookInstance"]:
        raise BadRequest(400, "hookInstance (a string) is required")
    context = _object(body.get("context"), "context")
    patient_id = context.get("patientId")
    if not isinstance(patient_id, str) or not FHIR_ID.fullmatch(patient_id):
        raise BadRequest(400, "context.patientId must be a FHIR id ([A-Za-z0-9.-], 1-64 characters)")
    if "prefetch" in body and body["prefetch"] is not None:
        prefetch = _object(body["prefetch"], "prefetch")
        for key, value in prefetch.items():
            if value is not None and not (isinstance(value, dict) and isinstance(value.get("resourceType"), str)):
                raise BadRequest(400, f"prefetch.{key} must be a FHIR resource or null")
            if value is not None:
                check_bundle(value, f"prefetch.{key}")
        for patient in resources_of(prefetch.get("patient")):
            if patient.get("resourceType") == "Patient" and patient.get("id") != patient_id:
                raise BadRequest(400, f"prefetch.patient is Patient/{patient.get('id')}, not the context's patient "
                                      f"Patient/{patient_id}")
    if "fhirServer" in body:
        server = body["fhirServer"]
        if not isinstance(server, str) or urlsplit(server).scheme not in ("http", "https") or not urlsplit(server).netloc:
            raise BadRequest(400, "fhirServer must be an http(s) URL")
        if "fhirAuthorization" in body:
            auth = _object(body["fhirAuthorization"], "fhirAuthorization")
            if not isinstance(auth.get("access_token"), str):
                raise BadRequest(400, "fhirAuthorization.access_token (a string) is required")
    if service_id == "order-select":
        orders = _object(context.get("draftOrders"), "context.draftOrders")
        if orders.get("resourceType") != "Bundle" or not isinstance(orders.get("entry", []), list):
            raise BadRequest(400, "context.draftOrders must be a FHIR Bundle")
    return context


def check_bundle(value: dict, what: str) -> None:
    """A Bundle's entries are a list of objects, each resource an object with a resourceType: anything
    else is a malformed request, not a patient without data."""
    if value.get("resourceType") != "Bundle":
        return
    entries = value.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest(400, f"{what}.entry must be a list of entries, not {type(entries).__name__}")
    for number, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not (isinstance(resource, dict) and isinstance(resource.get("resourceType"), str)):
            raise BadRequest(400, f"{what}.entry[{number}] must be an object whose resource is a FHIR resource")


def as_of_of(body: dict, default: dt.date | None) -> dt.date:
    """The assessment date: the request's extension neuropathy-kg.asOf, else the server's, else today (UTC)."""
    extension = body.get("extension")
    value = extension.get(AS_OF_EXTENSION) if isinstance(extension, dict) else None
    if value is not None:
        try:
            return dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise BadRequest(400, f"extension.{AS_OF_EXTENSION} must be a date YYYY-MM-DD") from None
    return default or dt.datetime.now(dt.timezone.utc).date()


def max_request_bytes() -> int:
    """The largest request body read: NEUROPATHY_KG_MAX_REQUEST_MB (default DEFAULT_MAX_REQUEST_MB), read
    at each request. A hook's prefetch is one patient's records; the 256 MB document limit of the CLI
    would let a few concurrent uploads take the host's memory."""
    try:
        return max(1, int(os.environ.get("NEUROPATHY_KG_MAX_REQUEST_MB", DEFAULT_MAX_REQUEST_MB))) << 20
    except ValueError:
        return DEFAULT_MAX_REQUEST_MB << 20


async def read_body(request, limit: int) -> bytes:
    """The request body, read chunk by chunk (a chunked upload declares no length): a 413 as soon as the
    running total passes ``limit``, so no more than ``limit`` plus one chunk is ever held."""
    too_large = BadRequest(413, f"the request is over the {limit >> 20} MB limit (NEUROPATHY_KG_MAX_REQUEST_MB)")
    declared = request.headers.get("content-length") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    parts, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


# ---------------------------------------------------------------- data

def resources_of(value: dict | None) -> list[dict]:
    """The resources of one prefetch value: a resource, or the entries of a Bundle (searchset)."""
    if value is None or value.get("resourceType") == "OperationOutcome":
        return []
    if value.get("resourceType") == "Bundle":
        return [e["resource"] for e in value.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    return [value]


def render(template: str, context: dict) -> str:
    return re.sub(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}", lambda m: str(context.get(m.group(1), "")), template)


async def fetch_missing(body: dict, context: dict, missing: list[str], client) -> dict[str, list[dict]]:
    """The missing prefetch keys read from fhirServer with the bearer token, the searches at once. Next
    links are followed up to MAX_PAGES pages, and only on fhirServer, so the token goes nowhere else; a
    search with more pages, or a next link elsewhere, is a 502 rather than an answer from part of the data."""
    import httpx

    base = body["fhirServer"].rstrip("/") + "/"
    headers = {"Accept": "application/fhir+json"}
    auth = body.get("fhirAuthorization")
    if isinstance(auth, dict) and auth.get("access_token"):
        headers["Authorization"] = f"Bearer {auth['access_token']}"

    async def one(key: str) -> list[dict]:
        url, resources = base + render(PREFETCH[key], context), []
        for _page in range(MAX_PAGES):
            try:
                response = await client.get(url, headers=headers, timeout=FETCH_TIMEOUT)
            except httpx.HTTPError as error:
                raise BadRequest(502, f"fhirServer: {url}: {one_line(error)}") from None
            if response.status_code == 404 and key == "patient":
                break
            if response.status_code != 200:
                raise BadRequest(502, f"fhirServer: {url}: HTTP {response.status_code}")
            try:
                page = _object(orjson.loads(response.content), "a fhirServer answer")
            except (orjson.JSONDecodeError, BadRequest):
                raise BadRequest(502, f"fhirServer: {url}: not a FHIR JSON resource") from None
            resources += resources_of(page)
            following = next((link.get("url") for link in page.get("link") or []
                              if isinstance(link, dict) and link.get("relation") == "next"), None)
            if not isinstance(following, str):
                return resources
            if not following.startswith(base):  # the token stays on fhirServer; half the data would mislead
                raise BadRequest(502, f"fhirServer: {url}: its next link leaves {base}; refused rather than read in part")
            url = following
        if key == "patient":
            return resources
        raise BadRequest(502, f"fhirServer: {PREFETCH[key]}: more than {MAX_PAGES} pages; refused rather than read in "
                              "part (send it as prefetch)")

    fetched = await asyncio.gather(*(one(key) for key in missing))  # the searches at once
    return dict(zip(missing, fetched))


def patient_data(resources: list[dict], patient_id: str, source: str):
    """The one Patient (neuropathy_kg.load) of these FHIR resources whose id is patient_id, or None. The
    resources go to the reader as they are (read as one Bundle of them, not encoded and parsed again)."""
    if not resources:
        return None
    try:
        patients, _problems = read_resources(source, resources)
    except InputError as error:
        raise BadRequest(400, str(error)) from None
    return next((p for p in patients if p.id == patient_id), None)


def as_current_orders(orders: dict, patient_id: str, as_of: dt.date) -> list[dict]:
    """order-select's draft orders as the patient's current medication: status active, intent order,
    the patient in context as subject, authored on the assessment date unless they say otherwise."""
    current = []
    for resource in resources_of(orders):
        resource = dict(resource)
        if resource.get("resourceType") == "MedicationRequest":
            resource.update({"status": "active", "intent": "order", "subject": {"reference": f"Patient/{patient_id}"}})
            resource.setdefault("authoredOn", as_of.isoformat())
        current.append(resource)
    return current


def _key(resource: dict) -> tuple:
    return (resource.get("resourceType"), resource.get("id")) if resource.get("id") else (id(resource),)


# ---------------------------------------------------------------- the pipeline (in a worker thread)

def assess(patient, as_of: dt.date) -> dict:
    from .pipeline import assess_chunk

    return assess_chunk([patient], as_of, "oxigraph")[0]


def findings(patient, as_of: dt.date) -> list[dict]:
    """The patient's validate findings alone (order-select's cards are pitfalls: no recommend queries)."""
    from .pipeline import validate_chunk

    return validate_chunk([patient], as_of, "oxigraph", "compiled")[0]["findings"]


# ---------------------------------------------------------------- cards

def _card_uuid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{NKG}cds/" + "/".join(str(p) for p in parts)))


def _summary(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[:SUMMARY_LIMIT - 1].rstrip() + "\u2026"


def _citations_markdown(citations) -> str:
    by_label = {}
    for citation in plan().citations.values():
        label = next((i["value"] for i in citation.get("identifier", [])), None)
        by_label[label] = citation
    lines = []
    for label in citations:
        citation = by_label.get(label)
        if citation is None:
            lines.append(f"- [{label}]")
            continue
        summary = (citation.get("summary") or [{}])[0].get("text") or citation.get("title", "")
        lines.append(f"- [{label}] {summary} <{citation['url']}>")
    return "**Evidence**\n\n" + "\n".join(lines) if lines else ""


def _card(uid: str, entry, summary: str, indicator: str, detail: str) -> dict:
    info = plan()
    return {"uuid": uid, "summary": _summary(summary), "indicator": indicator, "detail": detail,
            "source": {"label": f"neuropathy-kg {__version__}: {info.title}", "url": info.url,
                       "topic": {"system": PROJECT_CODES, "code": entry.id, "display": entry.label}},
            "overrideReasons": [dict(reason) for reason in OVERRIDE_REASONS],
            "links": [{"label": f"Guideline: {info.title}", "url": info.url, "type": "absolute"},
                      {"label": f"Catalogue entry {entry.id}", "url": entry.iri, "type": "absolute"}]}


def finding_cards(findings: list[dict], service_id: str, patient_id: str, as_of: dt.date) -> list[dict]:
    cards = []
    for finding in findings:
        entry = guideline.catalogue().get(finding["id"])
        if entry is None:
            continue
        uid = _card_uuid(service_id, patient_id, as_of, finding["id"], finding["focus"], finding.get("value", ""), finding["message"])
        detail = "\n\n".join(part for part in (finding["message"], _citations_markdown(entry.citations)) if part)
        cards.append(_card(uid, entry, f"{entry.label}: {finding['message']}", INDICATOR.get(finding["severity"], "info"), detail))
    return cards


def _suggested(resource: dict, patient_id: str) -> dict:
    """A proposed request as a CDS suggestion creates it: for the EHR's patient, a draft proposal (the
    clinician signs it), without the $apply Bundle's ids."""
    created = {k: v for k, v in resource.items() if k != "id"}
    created["status"] = "draft"
    created["intent"] = "proposal"
    created["for" if resource["resourceType"] == "Task" else "subject"] = {"reference": f"Patient/{patient_id}"}
    return created


def _stops(records: list[str], resources: list[dict], patient_id: str) -> tuple[list[dict], list[str]]:
    """CDS Hooks ``update`` actions that stop the current MedicationRequests (their prefetch resource
    with status "stopped"), and the records that cannot be stopped so (a MedicationStatement, an order
    not in the request's data for this patient): those the clinician must change by hand."""
    requests = {r.get("id"): r for r in resources if r.get("resourceType") == "MedicationRequest"
                and str((r.get("subject") or {}).get("reference", "")).endswith(f"Patient/{patient_id}")}
    actions, unidentified = [], []
    for record in records:
        kind, rid = record.rsplit("/", 2)[-2:]  # the converter's records end in /MedicationRequest/<id>
        resource = requests.get(rid) if kind == "MedicationRequest" else None
        if resource is None:
            unidentified.append(record)
            continue
        actions.append({"type": "update", "description": f"Stop the current order MedicationRequest/{rid}",
                        "resource": {**resource, "status": "stopped"}})
    return actions, unidentified


def active_records(result: dict, drug: str) -> list[str]:
    """The patient's records of ``drug`` (a catalogue local name) in effect, by IRI: the recommend result's
    facts.activeMedication (queries/report/active-medication.rq)."""
    return [m["record"] for m in (result.get("facts") or {}).get("activeMedication", []) if m["drug"] == drug]


def action_cards(bundle: dict, result: dict, service_id: str, patient_id: str, as_of: dt.date,
                 resources: list[dict] | None = None) -> list[dict]:
    """A card per action of the $apply RequestGroup, each suggesting the request the action proposes.
    A medication the patient is already on (an active record of the same drug) is a dose change: the
    suggestion also stops the current order(s), or, where one cannot be identified, is not recommended
    and the card says the current order must be changed."""
    data = resources or []
    resources = {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}
    group = next(r for r in resources.values() if r["resourceType"] == "RequestGroup")
    # a card per proposed request: an action of several drugs (reduce-to-renal-dose) has one per drug
    by_request = {f"urn:uuid:{request_id(action, result, as_of.isoformat())}": action for action in result["actions"]}
    cards = []
    for planned in leaf_actions(group):
        action = by_request[planned["resource"]["reference"]]
        entry, request = guideline.catalogue()[action["id"]], resources[planned["resource"]["reference"]]
        uid = _card_uuid(service_id, patient_id, as_of, action["id"], action["rationale"], orjson.dumps(action.get("dose")))
        lines = [action["rationale"]]
        lines += [f"**Dose**: {d['text']}" for d in request.get("dosageInstruction", []) if d.get("text")]
        if "due" in action:
            lines.append(f"**Due**: {action['due']}")
        lines += [f"**Not complete**: {note['text']}" for note in request.get("note", [])
                  if not note["text"].startswith(REPLACES_NOTE)]
        lines.append(_citations_markdown(action["citations"]))
        card = _card(uid, entry, planned["title"], "info", "\n\n".join(line for line in lines if line))
        draft = request["status"] == "draft"
        stops, unidentified = [], []
        drug = (action.get("dose") or {}).get("drug")
        if request["resourceType"] == "MedicationRequest" and drug:
            stops, unidentified = _stops(active_records(result, drug), data, patient_id)
        if unidentified:
            named = ", ".join("/".join(record.rsplit("/", 2)[-2:]) for record in unidentified)
            warning = (f"**Current order**: {drug} is already recorded as active ({named}); change or stop that "
                       "order in the record: this suggestion does not replace it.")
            card["detail"] = warning + "\n\n" + card["detail"]
        elif stops:
            card["detail"] = (f"**Current order**: the suggestion stops {', '.join('MedicationRequest/' + a['resource']['id'] for a in stops)}"
                              f" ({drug}) and creates the new order.\n\n" + card["detail"])
        card["suggestions"] = [{"label": _summary(("Propose (incomplete): " if draft else "Propose: ") + planned["title"]),
                                "uuid": _card_uuid(uid, "suggestion"), "isRecommended": not draft and not unidentified,
                                "actions": stops + [{"type": "create", "description": planned["title"],
                                                     "resource": _suggested(request, patient_id)}]}]
        card["selectionBehavior"] = "at-most-one"
        cards.append(card)
    return cards


def patient_view(resources: list[dict], patient_id: str, as_of: dt.date, source: str) -> list[dict]:
    """patient-view: read the patient from the resources, run the guideline, make the cards."""
    patient = patient_data(resources, patient_id, source)
    return [] if patient is None else patient_view_cards(patient, patient_id, as_of, resources)


def order_select(resources: list[dict], draft_orders: dict, patient_id: str, as_of: dt.date, source: str) -> list[dict]:
    """order-select: the patient with and without the draft orders (which replace any resource of the
    same type and id in the data), and the pitfall cards the orders bring."""
    orders = as_current_orders(draft_orders, patient_id, as_of)
    drafts = {_key(r) for r in orders}
    kept = [r for r in resources if _key(r) not in drafts]
    before, after = patient_data(kept, patient_id, source), patient_data(kept + orders, patient_id, source)
    return [] if after is None else order_select_cards(before, after, patient_id, as_of)


def patient_view_cards(patient, patient_id: str, as_of: dt.date, resources: list[dict] | None = None) -> list[dict]:
    outcome = assess(patient, as_of)
    bundle = recommend_patient_bundle(outcome["recommend"], as_of.isoformat(), checked=False)
    return (finding_cards(outcome["validate"]["findings"], "patient-view", patient_id, as_of)
            + action_cards(bundle, outcome["recommend"], "patient-view", patient_id, as_of, resources))


def order_select_cards(before, after, patient_id: str, as_of: dt.date) -> list[dict]:
    """The pitfall cards that the draft orders bring: found with them (``after``) and not without."""
    def key(finding: dict) -> tuple:
        return (finding["id"], finding["severity"], finding["message"], finding.get("value", ""))

    known = {key(f) for f in findings(before, as_of)} if before is not None else set()
    catalogue = guideline.catalogue()
    new = [f for f in findings(after, as_of)
           if key(f) not in known and getattr(catalogue.get(f["id"]), "kind", "") == "Pitfall"]
    return finding_cards(new, "order-select", patient_id, as_of)


# ---------------------------------------------------------------- $apply

def apply_parameters(body: dict, default: dt.date | None) -> tuple[str, list[dict], dt.date]:
    """(subject patient id, data resources, as-of date) of a PlanDefinition/$apply Parameters resource."""
    if body.get("resourceType") != "Parameters" or not isinstance(body.get("parameter"), list):
        raise BadRequest(400, "the body must be a FHIR Parameters resource")
    params: dict[str, dict] = {}
    for parameter in body["parameter"]:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise BadRequest(400, "each parameter needs a name")
        params[parameter["name"]] = parameter
    wanted = params.get("url", params.get("planDefinition"))
    if wanted is not None:
        given = wanted.get("valueUri") or wanted.get("valueCanonical") or wanted.get("valueString")
        if not isinstance(given, str) or given.split("|")[0] != plan().url:
            raise BadRequest(404, f"unknown PlanDefinition {given!r}: this service applies {plan().url}")
    subject = (params.get("subject") or {}).get("valueString") or ((params.get("subject") or {}).get("valueReference") or {}).get("reference")
    if not isinstance(subject, str) or not FHIR_ID.fullmatch(subject.removeprefix("Patient/")):
        raise BadRequest(400, "subject (valueString 'Patient/<id>') is required")
    data = (params.get("data") or {}).get("resource")
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise BadRequest(400, "data (a Bundle resource) is required")
    check_bundle(data, "data")
    as_of = default or dt.datetime.now(dt.timezone.utc).date()
    if "asOf" in params:
        value = params["asOf"].get("valueDate") or params["asOf"].get("valueString")
        try:
            as_of = dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise BadRequest(400, "asOf must be a valueDate YYYY-MM-DD") from None
    return subject.removeprefix("Patient/"), resources_of(data), as_of


def apply_to(resources: list[dict], patient_id: str, as_of: dt.date) -> dict:
    """$apply for one patient of the data: the Bundle of `recommend --format fhir`."""
    patient = patient_data(resources, patient_id, "$apply data")
    if patient is None:
        raise BadRequest(400, f"the data Bundle holds nothing about Patient/{patient_id}")
    return recommend_patient_bundle(assess(patient, as_of)["recommend"], as_of.isoformat())


def outcome(message: str, code: str = "invalid") -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": message}]}


# ---------------------------------------------------------------- a hook request, start to end

class PendingHook(NamedTuple):
    """A checked hook request: its body, context, assessment date, the resources of each prefetch key,
    and the keys missing from the prefetch (read from fhirServer before the cards are made)."""
    body: dict
    context: dict
    as_of: dt.date
    data: dict[str, list[dict]]
    missing: list[str]


def checked_hook(service_id: str, raw: bytes, default: dt.date | None) -> PendingHook:
    """The hook request of this body, checked (BadRequest: 400, or 412 when prefetch keys are missing
    and no fhirServer was given)."""
    body = parse_hook_body(raw)
    context = check_hook_request(service_id, body)
    date = as_of_of(body, default)
    prefetch = body.get("prefetch") or {}
    data = {key: resources_of(value) for key, value in prefetch.items() if key in PREFETCH}
    missing = [key for key in PREFETCH if key not in prefetch]
    if missing and not body.get("fhirServer"):
        raise BadRequest(412, f"prefetch is missing {', '.join(missing)} and no fhirServer was given")
    return PendingHook(body, context, date, data, missing)


def hook_answer(service_id: str, hook: PendingHook) -> bytes:
    """The JSON answer (cards) of a checked hook request whose data is all there."""
    resources = [r for values in hook.data.values() for r in values]
    patient_id = hook.context["patientId"]
    source = f"{service_id} request {hook.body['hookInstance']}"
    if service_id == "patient-view":
        cards = patient_view(resources, patient_id, hook.as_of, source)
    else:
        cards = order_select(resources, hook.context["draftOrders"], patient_id, hook.as_of, source)
    return orjson.dumps({"cards": cards})


def answer_hook(service_id: str, raw: bytes, default: dt.date | None) -> bytes | PendingHook:
    """A hook request from its body to its answer, in one worker thread call: the JSON of the cards, or
    the checked request (PendingHook) if prefetch keys must first be read from fhirServer."""
    hook = checked_hook(service_id, raw, default)
    return hook if hook.missing else hook_answer(service_id, hook)


# ---------------------------------------------------------------- the application

def create_app(as_of: dt.date | None = None):
    """The ASGI application; ``as_of`` fixes the assessment date (default: each request's UTC date)."""
    from contextlib import asynccontextmanager

    import httpx
    from fastapi import FastAPI, Request
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import JSONResponse, Response
    from anyio import CapacityLimiter, to_thread

    from .batch import warm_up

    @asynccontextmanager
    async def lifespan(app):
        warm_up()  # the guideline parsed once, before the first request
        plan()
        async with httpx.AsyncClient(follow_redirects=False) as client:
            app.state.client = client
            yield

    app = FastAPI(title="neuropathy-kg CDS service", version=__version__, lifespan=lifespan)
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"])
    app.state.feedback = collections.deque(maxlen=FEEDBACK_KEPT)
    limiter = CapacityLimiter(WORKERS)

    async def work(function, *args):
        """CPU-bound work in a worker thread, at most WORKERS at once: the others wait their turn, so a
        burst of requests holds their bodies, not their parsed data and stores, in memory."""
        return await to_thread.run_sync(function, *args, limiter=limiter)

    def json_response(content, status: int = 200, fhir: bool = False):
        return Response(orjson.dumps(content), status_code=status,
                        media_type="application/fhir+json" if fhir else "application/json")

    async def body_of(request: Request) -> dict:
        raw = await read_body(request, max_request_bytes())
        return await work(parse_json, raw)  # megabytes of data: not on the event loop

    @app.exception_handler(BadRequest)
    async def bad_request(_request, error: BadRequest):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(Exception)
    async def unexpected(_request, error: Exception):  # one line, never a traceback to the client
        return JSONResponse({"error": f"internal error: {one_line(error)}"}, status_code=500)

    @app.get("/cds-services")
    async def services():
        return json_response(discovery())

    @app.post("/cds-services/{service_id}")
    async def hook(service_id: str, request: Request):
        if service_id not in SERVICES:
            raise BadRequest(404, f"no CDS service {service_id!r} (known: {', '.join(SERVICES)})")
        raw = await read_body(request, max_request_bytes())
        answer = await work(answer_hook, service_id, raw, as_of)  # one worker call: parse, checks, cards
        if isinstance(answer, PendingHook):  # a prefetch key is missing: read it from fhirServer
            answer.data.update(await fetch_missing(answer.body, answer.context, answer.missing, request.app.state.client))
            answer = await work(hook_answer, service_id, answer)
        return Response(answer, media_type="application/json")

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request):
        if service_id not in SERVICES:
            raise BadRequest(404, f"no CDS service {service_id!r}")
        body = await body_of(request)
        items = body.get("feedback")
        if not isinstance(items, list) or not items:
            raise BadRequest(400, "feedback (a non-empty array) is required")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("card"), str) or item.get("outcome") not in ("accepted", "overridden"):
                raise BadRequest(400, "each feedback item needs a card uuid and an outcome (accepted or overridden)")
        request.app.state.feedback.extend({"service": service_id, **item} for item in items)
        return json_response({})

    @app.post("/PlanDefinition/$apply")
    async def apply(request: Request):
        try:
            body = await body_of(request)
            patient_id, resources, date = apply_parameters(body, as_of)
            bundle = await work(apply_to, resources, patient_id, date)
        except BadRequest as error:
            return json_response(outcome(str(error), "not-found" if error.status == 404 else "invalid"), error.status, fhir=True)
        return json_response(bundle, fhir=True)

    return app


def listening_socket(host: str, port: int):
    """The socket serve listens on, bound here rather than by uvicorn, which logs an unusable address
    over several lines and exits 3: a port in use or an unknown host is ServeError's one line instead."""
    import socket

    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise ServeError(f"serve: cannot listen on {host}:{port}: {error.strerror or one_line(error)}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: no wait after a restart
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ServeError(f"serve: cannot listen on {host}:{port}: {error.strerror or one_line(error)}") from None
    return sock


def serve(host: str, port: int, as_of: dt.date | None = None) -> None:
    """Run the service until interrupted; ServeError (one line) if the address cannot be listened on."""
    import uvicorn

    from .batch import warm_up

    sock = listening_socket(host, port)
    try:  # the guideline parsed here, so that a failure is one line, not the traceback uvicorn logs
        warm_up()
        plan()
    except Exception as error:  # noqa: BLE001 - the one-line contract of the CLI
        sock.close()
        raise ServeError(f"serve: the service could not start: {one_line(error)}") from None
    gc.collect()
    gc.freeze()  # as warm_up does, for the CPG export's objects too: no collection walks them again
    server = uvicorn.Server(uvicorn.Config(create_app(as_of), log_level="info"))
    try:
        server.run(sockets=[sock])
    except SystemExit as stop:  # uvicorn exits 3 when the application's start-up fails
        if stop.code not in (0, None):
            raise ServeError(f"serve: the service on {host}:{port} could not start (see the log above)") from None
    if not server.started:
        raise ServeError(f"serve: the service on {host}:{port} could not start (see the log above)")
