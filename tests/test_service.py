"""Issue 17, `neuropathy-kg serve`: the real service (uvicorn, in a thread, on a free loopback port)
driven over HTTP with httpx. CDS Hooks 2.0 discovery, patient-view cards for every scenario checked
against its expected ids, order-select on draft orders, prefetch absent (412), data read from a fake
FHIR server with the bearer token, malformed requests (400, the service still answering), feedback,
PlanDefinition/$apply, and 16 concurrent requests."""

from __future__ import annotations

import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson
import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from conftest import expected, scenario_input, scenario_names
from service_client import KEY_OF, ServerThread, hook_request, scenario_as_of, scenario_resources
from test_apply import assert_closed
from neuropathy_kg import guideline
from neuropathy_kg.apply import PROJECT_CODES, plan
from neuropathy_kg.service import PREFETCH, create_app

SEVERITY_OF = {"critical": "violation", "warning": "warning", "info": "info"}
MODELS = {"MedicationRequest": MedicationRequest, "ServiceRequest": ServiceRequest, "Task": Task}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.fixture(scope="module")
def service():
    app = create_app()
    with ServerThread(app) as running:
        running.app = app
        yield running


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.url, timeout=120) as http:
        yield http


def cards_of(client, hook: str, body: dict) -> list[dict]:
    response = client.post(f"/cds-services/{hook}", json=body)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def test_discovery_lists_both_hooks_with_prefetch_for_every_type_the_rules_read(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = {s["id"]: s for s in response.json()["services"]}
    assert set(services) == {"patient-view", "order-select"}
    for sid, service in services.items():
        assert service["hook"] == sid and service["description"] and service["title"]
        templates = service["prefetch"]
        kinds = {template.split("?")[0].split("/")[0] for template in templates.values()}
        assert kinds == set(KEY_OF)
        assert all("{{context.patientId}}" in template for template in templates.values())


@pytest.mark.parametrize("name", [n for n in scenario_names() if scenario_input(n).suffix == ".ttl"])  # RDF scenarios (their FHIR twins)
def test_patient_view_cards_are_the_scenarios_expected_ids(client, name):
    spec = expected(name)
    for pid, resources in scenario_resources(name).items():
        cards = cards_of(client, "patient-view", hook_request("patient-view", pid, resources, scenario_as_of(name)))
        actions = sorted(c["source"]["topic"]["code"] for c in cards if "suggestions" in c)
        findings = {f"{c['source']['topic']['code']}:{SEVERITY_OF[c['indicator']]}" for c in cards if "suggestions" not in c}
        want = spec["patients"][pid]
        assert actions == sorted(want["actions"]), pid
        assert findings == set(want["findings"]), pid
        # no two cards propose the same (an action of several drugs: a card per drug, each its own drug's order)
        proposed = [orjson.dumps(c["suggestions"][0]["actions"][-1]["resource"].get("medicationCodeableConcept")
                                 or c["source"]["topic"]["code"]) + c["source"]["topic"]["code"].encode()
                    for c in cards if "suggestions" in c]
        assert len(set(proposed)) == len(proposed), pid
        assert len({c["summary"] for c in cards if "suggestions" in c}) == len(proposed), pid


def test_cards_are_well_formed_and_stable(client):
    name = "example-03-renal-impairment"
    body = hook_request("patient-view", "carmen", scenario_resources(name)["carmen"], scenario_as_of(name))
    cards = cards_of(client, "patient-view", body)
    again = cards_of(client, "patient-view", {**body, "hookInstance": "another-instance"})
    assert cards == again, "the same input gives the same cards and uuids"
    uuids = [c["uuid"] for c in cards] + [s["uuid"] for c in cards for s in c.get("suggestions", [])]
    assert len(uuids) == len(set(uuids))
    for card in cards:
        assert len(card["summary"]) <= 140
        assert card["indicator"] in ("info", "warning", "critical")
        topic = card["source"]["topic"]
        assert topic["system"] == PROJECT_CODES and topic["code"] in guideline.catalogue()
        assert card["source"]["label"] and card["source"]["url"] == plan().url
        assert card["overrideReasons"] and all({"system", "code", "display"} <= set(r) for r in card["overrideReasons"])
        assert any(link["url"] == plan().url and link["type"] == "absolute" for link in card["links"])
        assert "**Evidence**" in card["detail"]
        for suggestion in card.get("suggestions", []):
            assert card["selectionBehavior"] == "at-most-one"
            *stops, action = suggestion["actions"]
            assert action["type"] == "create" and all(stop["type"] == "update" for stop in stops)
            for resource in [action["resource"]] + [stop["resource"] for stop in stops]:
                MODELS[resource["resourceType"]].model_validate(resource)
                assert (resource.get("subject") or resource.get("for")) == {"reference": "Patient/carmen"}
    ivig = next(c for c in cards if c["source"]["topic"]["code"] == "repeat-ivig")
    request = ivig["suggestions"][0]["actions"][0]["resource"]
    assert request["resourceType"] == "MedicationRequest" and request["status"] == "draft"
    assert request["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 30
    assert "30 g a day for 5 days" in ivig["detail"]
    overdose = next(c for c in cards if c["source"]["topic"]["code"] == "dose-above-maximum")
    assert overdose["indicator"] == "critical" and "150 mg/day" in overdose["detail"]


def test_an_incomplete_suggestion_is_not_recommended_and_says_what_is_missing(client):
    name = "example-06-missing-data"
    cards = cards_of(client, "patient-view", hook_request("patient-view", "farid", scenario_resources(name)["farid"], scenario_as_of(name)))
    ivig = next(c for c in cards if c["source"]["topic"]["code"] == "repeat-ivig")
    suggestion = ivig["suggestions"][0]
    assert suggestion["isRecommended"] is False
    assert "dosageInstruction" not in suggestion["actions"][0]["resource"]
    assert "data-missing-body-weight" in ivig["detail"]


def test_other_patients_data_in_the_prefetch_is_ignored(client):
    carmen = scenario_resources("example-03-renal-impairment")["carmen"]
    alice = scenario_resources("example-01-responder-relapse")["alice"]
    alone = cards_of(client, "patient-view", hook_request("patient-view", "carmen", carmen, "2026-11-24"))
    others = [r for r in alice if r["resourceType"] != "Patient"]  # searches answered with another patient's records too
    mixed = cards_of(client, "patient-view", hook_request("patient-view", "carmen", carmen + others, "2026-11-24"))
    assert mixed == alone


def _draft(patient_id: str, coding: dict, amount: float, unit: str, oid: str = "draft-1") -> dict:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "MedicationRequest", "id": oid, "status": "draft", "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"}, "medicationCodeableConcept": {"coding": [coding]},
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                               "doseAndRate": [{"doseQuantity": {"value": amount, "unit": unit,
                                                                 "system": "http://unitsofmeasure.org", "code": unit}}]}]}}]}


PREGABALIN = {"system": RXNORM, "code": "187832", "display": "pregabalin"}


def test_order_select_flags_pregabalin_above_the_renal_bands_maximum(client):
    carmen = scenario_resources("example-03-renal-impairment")["carmen"]  # CrCl 25: band 15-29, at most 150 mg/day
    # the draft replaces the current order carmen-6 (priorPrescription): its own 600 mg/day is the dose
    draft = _draft("carmen", PREGABALIN, 600, "mg")
    draft["entry"][0]["resource"]["priorPrescription"] = {"reference": "MedicationRequest/carmen-6"}
    over = cards_of(client, "order-select", hook_request("order-select", "carmen", carmen, "2026-11-24",
                                                         draftOrders=draft, selections=["MedicationRequest/draft-1"]))
    codes = {c["source"]["topic"]["code"]: c for c in over}
    assert "dose-above-maximum" in codes and codes["dose-above-maximum"]["indicator"] == "critical"
    assert "600" in codes["dose-above-maximum"]["summary"] and "150" in codes["dose-above-maximum"]["summary"]
    assert all("suggestions" not in c for c in over), "order-select answers with pitfall cards"
    # a draft that replaces the current order (priorPrescription) at a dose within the band: nothing new
    replacing = _draft("carmen", PREGABALIN, 75, "mg")
    replacing["entry"][0]["resource"]["priorPrescription"] = {"reference": "MedicationRequest/carmen-6"}
    within = cards_of(client, "order-select", hook_request("order-select", "carmen", carmen, "2026-11-24", draftOrders=replacing))
    assert within == [], "the patient's existing findings are not repeated; a dose within the band is fine"


def test_order_select_sums_a_second_order_with_the_active_one(client):
    """review2 entry 15: a second pregabalin order next to the active carmen-6 (300 mg/day) is taken with it:
    375 mg/day in band 15-29 (at most 150) is a new critical card naming both orders, not silence."""
    carmen = scenario_resources("example-03-renal-impairment")["carmen"]
    cards = cards_of(client, "order-select", hook_request("order-select", "carmen", carmen, "2026-11-24",
                                                          draftOrders=_draft("carmen", PREGABALIN, 75, "mg")))
    codes = {c["source"]["topic"]["code"]: c for c in cards}
    assert codes["dose-above-maximum"]["indicator"] == "critical"
    detail = codes["dose-above-maximum"]["detail"]
    assert "pregabalin 375 mg/day" in detail and "MedicationRequest/carmen-6 300 mg/day" in detail and "MedicationRequest/draft-1 75 mg/day" in detail
    assert "missing-renal-dose-adjustment" in codes
    # the same draft with a stopped carmen-6 is within the band (75 mg/day): no card
    stopped = [dict(r, status="stopped") if r.get("id") == "carmen-6" else r for r in carmen]
    assert cards_of(client, "order-select", hook_request("order-select", "carmen", stopped, "2026-11-24",
                                                         draftOrders=_draft("carmen", PREGABALIN, 75, "mg"))) == []


def test_order_select_flags_ivig_for_a_symmetric_patient(client):
    bob = [r for r in scenario_resources("example-02-symmetric-ivig-planned")["bob"]
           if not (r["resourceType"] == "MedicationRequest" and "J06BA02" in json.dumps(r))]
    ivig = {"system": "http://www.whocc.no/atc", "code": "J06BA02"}
    cards = cards_of(client, "order-select", hook_request("order-select", "bob", bob, "2026-11-24", draftOrders=_draft("bob", ivig, 30, "g")))
    found = {c["source"]["topic"]["code"]: c["indicator"] for c in cards}
    assert found["ivig-in-symmetric-polyneuropathy"] == "critical"
    assert set(found) <= {"ivig-in-symmetric-polyneuropathy", "ivig-dose-off-protocol"}  # 30 g is not bob's 0.4 g/kg
    # the same draft for an asymmetric responder raises no symmetric-polyneuropathy card
    carmen = scenario_resources("example-03-renal-impairment")["carmen"]
    others = cards_of(client, "order-select", hook_request("order-select", "carmen", carmen, "2026-11-24", draftOrders=_draft("carmen", ivig, 30, "g")))
    assert "ivig-in-symmetric-polyneuropathy" not in {c["source"]["topic"]["code"] for c in others}


def test_prefetch_absent_and_no_fhir_server_is_412(client):
    body = hook_request("patient-view", "carmen", None, "2026-11-24")
    assert client.post("/cds-services/patient-view", json=body).status_code == 412
    partial = hook_request("patient-view", "carmen", scenario_resources("example-03-renal-impairment")["carmen"], "2026-11-24")
    del partial["prefetch"]["observations"]
    response = client.post("/cds-services/patient-view", json=partial)
    assert response.status_code == 412 and "observations" in response.json()["error"]


class FakeFhir:
    """A FHIR server on 127.0.0.1 answering the prefetch searches from a resource list, in pages of 2,
    remembering each request's path and Authorization header."""

    def __init__(self, resources: list[dict], foreign_next: bool = False):
        self.resources, self.seen, self.foreign_next = resources, [], foreign_next
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                fake.seen.append((self.path, self.headers.get("Authorization")))
                status, body = fake.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str):
        path = path.removeprefix("/fhir/")
        kind, _, query = path.partition("?")
        if "/" in kind:
            kind, rid = kind.split("/", 1)
            found = [r for r in self.resources if r["resourceType"] == kind and r["id"] == rid]
            return (200, found[0]) if found else (404, {"resourceType": "OperationOutcome", "issue": []})
        params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        matching = [r for r in self.resources if r["resourceType"] == kind]
        page = int(params.get("_page", 0))
        bundle = {"resourceType": "Bundle", "type": "searchset",
                  "entry": [{"resource": r} for r in matching[page * 2:page * 2 + 2]], "link": []}
        if page * 2 + 2 < len(matching):
            base = "http://elsewhere.invalid/fhir" if self.foreign_next else self.url
            bundle["link"].append({"relation": "next", "url": f"{base}/{kind}?patient={params.get('patient')}&_page={page + 1}"})
        return 200, bundle

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_missing_prefetch_is_read_from_the_fhir_server_with_the_bearer_token(client):
    name = "example-03-renal-impairment"
    resources = scenario_resources(name)["carmen"]
    fake = FakeFhir(resources)
    try:
        body = hook_request("patient-view", "carmen", None, scenario_as_of(name))
        body.update({"fhirServer": fake.url, "fhirAuthorization": {"access_token": "secret-token", "token_type": "Bearer",
                                                                   "expires_in": 300, "scope": "patient/*.read", "subject": "cds"}})
        fetched = cards_of(client, "patient-view", body)
    finally:
        fake.close()
    prefetched = cards_of(client, "patient-view", hook_request("patient-view", "carmen", resources, scenario_as_of(name)))
    assert fetched == prefetched
    assert fake.seen and all(auth == "Bearer secret-token" for _path, auth in fake.seen)
    paths = [path for path, _ in fake.seen]
    assert "/fhir/Patient/carmen" in paths and "/fhir/Observation?patient=carmen" in paths
    assert any("_page=1" in path for path in paths), "next links are followed"


def test_next_links_to_another_server_are_not_followed(client):
    resources = scenario_resources("example-03-renal-impairment")["carmen"]
    fake = FakeFhir(resources, foreign_next=True)
    try:
        body = hook_request("patient-view", "carmen", None, "2026-11-24")
        body.update({"fhirServer": fake.url, "fhirAuthorization": {"access_token": "t", "token_type": "Bearer"}})
        response = client.post("/cds-services/patient-view", json=body)
    finally:
        fake.close()
    assert response.status_code == 502, "the token is not sent elsewhere, and part of the data is no answer"
    assert "next link" in response.json()["error"]
    assert not any("_page" in path for path, _ in fake.seen)


def test_a_search_longer_than_the_page_limit_is_refused_not_cut(client, monkeypatch):
    from neuropathy_kg import service as module

    monkeypatch.setattr(module, "MAX_PAGES", 2)
    resources = scenario_resources("example-03-renal-impairment")["carmen"]
    assert sum(r["resourceType"] == "Observation" for r in resources) > 4, "observations need 3 pages of 2"
    fake = FakeFhir(resources)
    try:
        body = hook_request("patient-view", "carmen", None, "2026-11-24")
        body["fhirServer"] = fake.url
        response = client.post("/cds-services/patient-view", json=body)
    finally:
        fake.close()
    assert response.status_code == 502 and "more than 2 pages" in response.json()["error"]


def test_an_unreachable_fhir_server_is_a_502_in_one_line(client):
    body = hook_request("patient-view", "carmen", None, "2026-11-24")
    body["fhirServer"] = "http://127.0.0.1:9/fhir"
    response = client.post("/cds-services/patient-view", json=body)
    assert response.status_code == 502 and "\n" not in response.json()["error"]


MALFORMED = [
    b"{not json",
    b"[]",
    json.dumps({"hook": "order-select", "hookInstance": "x", "context": {"patientId": "carmen"}}).encode(),
    json.dumps({"hook": "patient-view", "context": {"patientId": "carmen"}}).encode(),
    json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "../../etc"}}).encode(),
    json.dumps({"hook": "patient-view", "hookInstance": "x", "context": []}).encode(),
    json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"}, "prefetch": {"patient": 3}}).encode(),
    json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"}, "fhirServer": "file:///etc"}).encode(),
    json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"}, "extension": {"neuropathy-kg.asOf": "soon"}}).encode(),
    # review2 entry 7: a searchset whose entry is not a list, or whose entries hold no resource
    json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"},
                "prefetch": {"observations": {"resourceType": "Bundle", "type": "searchset", "entry": "notalist"}}}).encode(),
    json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"},
                "prefetch": {"observations": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": 3}]}}}).encode(),
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_requests_are_400_and_the_service_stays_up(client, raw):
    response = client.post("/cds-services/patient-view", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] and "Traceback" not in response.text
    assert client.get("/cds-services").status_code == 200


def test_order_select_needs_draft_orders_and_unknown_services_are_404(client):
    body = hook_request("order-select", "carmen", [], "2026-11-24")
    assert client.post("/cds-services/order-select", json=body).status_code == 400
    assert client.post("/cds-services/nope", json=body).status_code == 404


def test_feedback_is_accepted_and_kept(client, service):
    body = {"feedback": [{"card": "9f5c4a40-0000-0000-0000-000000000000", "outcome": "overridden",
                          "overrideReason": {"reason": {"code": "patient-declined"}, "userComment": "no"},
                          "outcomeTimestamp": "2026-11-24T10:00:00Z"},
                         {"card": "9f5c4a40-0000-0000-0000-000000000001", "outcome": "accepted",
                          "acceptedSuggestions": [{"id": "x"}], "outcomeTimestamp": "2026-11-24T10:00:00Z"}]}
    response = client.post("/cds-services/patient-view/feedback", json=body)
    assert response.status_code == 200
    kept = list(service.app.state.feedback)
    assert [item["card"] for item in kept[-2:]] == [item["card"] for item in body["feedback"]]
    assert client.post("/cds-services/patient-view/feedback", json={"feedback": [{"card": 1}]}).status_code == 400


def _parameters(patient_id: str, resources: list[dict], as_of: str | None = "2026-11-24") -> dict:
    parameters = [{"name": "subject", "valueString": f"Patient/{patient_id}"},
                  {"name": "data", "resource": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}}]
    if as_of:
        parameters.append({"name": "asOf", "valueDate": as_of})
    return {"resourceType": "Parameters", "parameter": parameters}


def test_apply_answers_the_bundle_of_recommend_format_fhir(client):
    resources = scenario_resources("example-03-renal-impairment")["carmen"]
    response = client.post("/PlanDefinition/$apply", json=_parameters("carmen", resources))
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert_closed(bundle)
    (group,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RequestGroup"]
    assert sorted(a["id"] for a in group["action"]) == sorted(expected("example-03-renal-impairment")["patients"]["carmen"]["actions"])
    wrong = _parameters("carmen", resources)
    wrong["parameter"].append({"name": "url", "valueUri": "http://example.org/other"})
    assert client.post("/PlanDefinition/$apply", json=wrong).status_code == 404
    missing = client.post("/PlanDefinition/$apply", json={"resourceType": "Parameters", "parameter": [{"name": "subject", "valueString": "Patient/carmen"}]})
    assert missing.status_code == 400 and missing.json()["resourceType"] == "OperationOutcome"
    nobody = client.post("/PlanDefinition/$apply", json=_parameters("someone-else", resources))
    assert nobody.status_code == 400


def test_cors_preflight_is_answered(client):
    response = client.options("/cds-services/patient-view", headers={"Origin": "https://sandbox.cds-hooks.org",
                                                                      "Access-Control-Request-Method": "POST"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://sandbox.cds-hooks.org")


def test_sixteen_concurrent_requests_all_succeed_alike(client):
    jobs = []
    for name in ("example-01-responder-relapse", "example-03-renal-impairment", "example-06-missing-data", "absurd-values"):
        for pid, resources in scenario_resources(name).items():
            jobs.append(hook_request("patient-view", pid, resources, scenario_as_of(name)))
    jobs = (jobs * 4)[:16]

    def post(body):
        response = client.post("/cds-services/patient-view", json=body)
        return response.status_code, response.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, jobs))
    assert [status for status, _ in answers] == [200] * 16
    first = {}
    for body, (_status, answer) in zip(jobs, answers):
        pid = body["context"]["patientId"]
        assert first.setdefault(pid, answer) == answer, "concurrent answers equal the serial ones"


def test_prefetch_templates_render_for_the_context():
    from neuropathy_kg.service import render

    assert {render(t, {"patientId": "abc"}) for t in PREFETCH.values()} >= {"Patient/abc", "Condition?patient=abc"}


def test_the_readmes_curl_session_answers_as_documented():
    """docs/cds-hooks/ holds the README's requests; the service started with --as-of answers them so."""
    from conftest import ROOT

    app = create_app(dt.date(2026, 11, 24))
    with ServerThread(app) as running, httpx.Client(base_url=running.url, timeout=120) as http:
        view = json.loads((ROOT / "docs/cds-hooks/patient-view.json").read_text())
        codes = [f"{c['indicator']} {c['source']['topic']['code']}" for c in cards_of(http, "patient-view", view)]
        assert codes[:4] == ["critical dose-above-maximum", "critical missing-renal-dose-adjustment",
                             "info document-baseline-measures", "info neurologic-exam-for-symmetric-progression"]
        select = json.loads((ROOT / "docs/cds-hooks/order-select.json").read_text())
        summaries = [c["summary"] for c in cards_of(http, "order-select", select)]
        readme = (ROOT / "README.md").read_text()
        assert len(summaries) == 3 and all(summary in readme for summary in summaries)


def test_the_serve_command_starts_the_service_on_loopback():
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "neuropathy_kg.cli", "serve", "--port", str(port), "--as-of", "2026-11-24"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/cds-services", timeout=2)
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()[-1000:]
                time.sleep(0.2)
        assert response.status_code == 200 and len(response.json()["services"]) == 2
    finally:
        process.terminate()
        process.wait(10)


def _suggestion_of(cards: list[dict], action_id: str) -> dict:
    return next(c for c in cards if c["source"]["topic"]["code"] == action_id)["suggestions"][0]


def test_a_dose_change_stops_the_current_order_rather_than_adding_a_second(client):
    """review2 entry 13: carmen (CrCl 25, pregabalin 300 mg/day active as carmen-6): accepting
    reduce-to-renal-dose must not leave 300 mg/day next to the new 75 mg/day."""
    carmen = scenario_resources("example-03-renal-impairment")["carmen"]
    suggestion = _suggestion_of(cards_of(client, "patient-view", hook_request("patient-view", "carmen", carmen, "2026-11-24")),
                                "reduce-to-renal-dose")
    stops = [a for a in suggestion["actions"] if a["type"] == "update"]
    current = [r for r in carmen if r["resourceType"] == "MedicationRequest" and r.get("status") == "active"
               and "pregabalin" in json.dumps(r).lower()]
    assert current and sorted(a["resource"]["id"] for a in stops) == sorted(r["id"] for r in current)
    assert all(a["resource"]["status"] == "stopped" and a["resource"]["resourceType"] == "MedicationRequest" for a in stops)
    MedicationRequest.model_validate(stops[0]["resource"])
    assert [a["type"] for a in suggestion["actions"]][-1] == "create" and suggestion["isRecommended"] is True


def test_a_dose_change_of_a_drug_known_only_from_a_statement_is_not_recommended(client):
    carmen = scenario_resources("example-03-renal-impairment")["carmen"]
    statement = []
    for r in carmen:
        if r["resourceType"] == "MedicationRequest" and r.get("status") == "active" and "pregabalin" in json.dumps(r).lower():
            r = {k: v for k, v in r.items() if k not in ("intent", "authoredOn", "dosageInstruction", "requester", "subject")}
            dosage = next(x for x in carmen if x.get("id") == r["id"]).get("dosageInstruction")
            r.update({"resourceType": "MedicationStatement", "subject": {"reference": "Patient/carmen"},
                      "dosage": dosage, "effectiveDateTime": "2026-10-01"})
        statement.append(r)
    cards = cards_of(client, "patient-view", hook_request("patient-view", "carmen", statement, "2026-11-24"))
    card = next(c for c in cards if c["source"]["topic"]["code"] == "reduce-to-renal-dose")
    assert card["suggestions"][0]["isRecommended"] is False
    assert all(a["type"] == "create" for a in card["suggestions"][0]["actions"])
    assert "MedicationStatement/" in card["detail"] and "does not replace it" in card["detail"]


def test_a_chunked_body_is_refused_at_the_limit_not_read_whole():
    """review2 entry 6: a body without Content-Length is read chunk by chunk and refused as soon as it
    passes the limit: the rest of the upload is never read."""
    import asyncio

    from neuropathy_kg.service import BadRequest, read_body

    class Upload:
        headers: dict = {}
        read = 0

        async def stream(self):
            for _ in range(1000):  # 1000 MB offered
                self.read += 1
                yield b" " * (1 << 20)

    upload = Upload()
    with pytest.raises(BadRequest) as refused:
        asyncio.run(read_body(upload, 2 << 20))
    assert refused.value.status == 413 and "2 MB" in str(refused.value)
    assert upload.read == 3


def test_the_request_limit_is_configurable_and_answers_413_to_a_chunked_upload(client, monkeypatch):
    monkeypatch.setenv("NEUROPATHY_KG_MAX_REQUEST_MB", "1")
    body = json.dumps(hook_request("patient-view", "carmen", [], "2026-11-24")).encode()
    padded = body[:-1] + b"," + b'"pad": "' + b"x" * (2 << 20) + b'"}'
    response = client.post("/cds-services/patient-view", content=iter([padded[i:i + 65536] for i in range(0, len(padded), 65536)]),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "1 MB" in response.json()["error"]
    monkeypatch.delenv("NEUROPATHY_KG_MAX_REQUEST_MB")
    assert client.get("/cds-services").status_code == 200


def test_a_prefetch_of_another_patient_than_the_context_is_400_naming_both(client):
    """review2 entry 7: a mis-wired EHR (context.patientId other than the prefetch's Patient) is told so,
    not answered an empty 200 indistinguishable from 'nothing to say'."""
    carmen = scenario_resources("example-03-renal-impairment")["carmen"]
    body = hook_request("patient-view", "carmen", carmen, "2026-11-24")
    body["context"]["patientId"] = "other"
    response = client.post("/cds-services/patient-view", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "Patient/carmen" in error and "Patient/other" in error and "\n" not in error


def test_apply_data_whose_entry_is_not_a_list_is_400(client):
    parameters = _parameters("carmen", [])
    data = next(p for p in parameters["parameter"] if p["name"] == "data")
    data["resource"]["entry"] = {"not": "a list"}
    response = client.post("/PlanDefinition/$apply", json=parameters)
    assert response.status_code == 400 and "data.entry" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("host", ["127.0.0.1", "256.1.1.1"])
def test_serve_on_a_port_in_use_or_a_bad_host_is_one_line_exit_2(host):
    """review2 entry 10: uvicorn logged several lines and exited 3."""
    import socket

    from click.testing import CliRunner

    from neuropathy_kg.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--host", host, "--port", str(port)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, (result.exit_code, result.stderr)
    assert lines[0].startswith("neuropathy-kg: serve: cannot listen on ") and f"{host}:{port}" in lines[0]


def test_apply_names_the_current_order_a_dose_change_replaces(client):
    carmen = scenario_resources("example-03-renal-impairment")["carmen"]
    response = client.post("/PlanDefinition/$apply", json=_parameters("carmen", carmen))
    assert response.status_code == 200, response.text
    resources = [e["resource"] for e in response.json()["entry"]]
    pregabalin = [r for r in resources if r["resourceType"] == "MedicationRequest" and "pregabalin" in json.dumps(r.get("medicationCodeableConcept")).lower()]
    assert pregabalin and all(r["priorPrescription"]["identifier"]["value"].endswith("/MedicationRequest/carmen-6")
                              and r["priorPrescription"]["display"] == "carmen-6" for r in pregabalin)
    assert_closed(response.json())
    assert all(any("carmen-6" in n["text"] and "stop it" in n["text"] for n in r["note"]) for r in pregabalin)
    MedicationRequest.model_validate(pregabalin[0])
    ivig = [r for r in resources if r["resourceType"] == "MedicationRequest" and r not in pregabalin]
    assert ivig and not any("priorPrescription" in r for r in ivig)


def test_the_order_stopped_is_this_patients_even_if_another_patients_has_the_same_id(client):
    carmen = scenario_resources("example-03-renal-impairment")["carmen"]
    order = next(r for r in carmen if r["resourceType"] == "MedicationRequest" and r.get("status") == "active"
                 and "pregabalin" in json.dumps(r).lower())
    other = {**order, "subject": {"reference": "Patient/zed"}}
    suggestion = _suggestion_of(cards_of(client, "patient-view", hook_request("patient-view", "carmen", carmen + [other], "2026-11-24")),
                                "reduce-to-renal-dose")
    (stop,) = [a for a in suggestion["actions"] if a["type"] == "update"]
    assert stop["resource"]["subject"] == {"reference": "Patient/carmen"}


def test_serve_help_gives_examples_and_exit_statuses():
    """review2 entry 19: as every other command's --help does."""
    from click.testing import CliRunner

    from neuropathy_kg.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "neuropathy-kg serve --port" in result.output and "curl" in result.output
    assert "Exit status: 0 stopped" in result.output and "2 the address cannot be listened on" in result.output


def test_serve_whose_start_up_fails_exits_2_not_0(monkeypatch):
    """uvicorn's Server.run returns without raising when the application's start-up fails: that is no
    clean stop, so serve says so in one line and exits 2."""
    import socket

    from click.testing import CliRunner

    from neuropathy_kg import batch
    from neuropathy_kg.cli import main

    def broken():
        raise RuntimeError("the guideline cannot be loaded")

    monkeypatch.setattr(batch, "warm_up", broken)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["neuropathy-kg: serve: the service could not start: the guideline cannot be loaded"], result.stderr
