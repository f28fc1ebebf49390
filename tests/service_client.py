"""Test tool: run the real service (uvicorn) in a thread on a free loopback port, and build CDS Hooks
requests from the scenarios' FHIR twins (tests/fhir_twin.py)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import defaultdict

import rdflib
import uvicorn

from conftest import expected, scenario_input
from fhir_twin import resources as twin_resources

#: prefetch key of each resource type (neuropathy_kg.service.PREFETCH).
KEY_OF = {"Patient": "patient", "Condition": "conditions", "Observation": "observations",
          "MedicationRequest": "medicationRequests", "MedicationStatement": "medicationStatements",
          "MedicationAdministration": "medicationAdministrations", "AllergyIntolerance": "allergies",
          "Procedure": "procedures"}


class ServerThread:
    """An ASGI app served by uvicorn in a daemon thread, on a socket bound before it starts (no race
    for the port)."""

    def __init__(self, app):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


def scenario_resources(name: str) -> dict[str, list[dict]]:
    """Patient id -> the FHIR twin's resources of that patient."""
    graph = rdflib.Graph().parse(scenario_input(name))
    by_patient: dict[str, list[dict]] = defaultdict(list)
    current = None
    for resource in twin_resources(graph):
        if resource["resourceType"] == "Patient":
            current = resource["id"]
        by_patient[current].append(resource)
    return dict(by_patient)


def prefetch(resources: list[dict]) -> dict:
    """Prefetch values for every key: the Patient, and a searchset Bundle per other resource type."""
    out: dict = {key: {"resourceType": "Bundle", "type": "searchset", "entry": []} for key in KEY_OF.values()}
    out["patient"] = None
    for resource in resources:
        key = KEY_OF[resource["resourceType"]]
        if key == "patient":
            out[key] = resource
        else:
            out[key]["entry"].append({"resource": resource})
    return out


def hook_request(hook: str, patient_id: str, resources: list[dict] | None, as_of: str, **context) -> dict:
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": {"userId": "Practitioner/1", "patientId": patient_id, **context},
            "extension": {"neuropathy-kg.asOf": as_of}}
    if resources is not None:
        body["prefetch"] = prefetch(resources)
    return body


def scenario_as_of(name: str) -> str:
    return expected(name)["asOf"]
