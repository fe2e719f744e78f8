"""Schemathesis hooks for Stagepact (issue 7, hostile input).

Two things the spec alone cannot give a fuzzer:

* the right token: each operation's `security` names the roles that may call it
  (OpenAPI 3.1 role names for a bearer scheme), so every case is sent with a
  token of an allowed role, of the organisations seeded below;
* objects that exist: a company, a student, an offer, a placement, a report, an
  investigation and a matching round are made through the API before the run,
  and a generated path id is swapped for one of theirs half of the time, so the
  fuzzer reaches the handlers' rules, not only their 404s.
"""

import datetime
import os

import requests
import schemathesis
from hypothesis import strategies as st

BASE = os.environ["STAGEPACT_URL"]
TOKENS = {role: os.environ[f"ST_TOKEN_{role.upper()}"]
          for role in ("student", "school", "company", "sbb", "monitor")}
COMPANY = os.environ["ST_COMPANY"]
STUDENT = os.environ["ST_STUDENT"]


def _post(path, role, body):
    response = requests.post(BASE + path, json=body, timeout=30,
                             headers={"Authorization": f"Bearer {TOKENS[role]}"})
    if response.status_code >= 300:
        raise RuntimeError(f"seeding {path}: {response.status_code} {response.text}")
    return response.json()


def _seed():
    """One object of each kind, owned by the organisations the tokens name."""
    today = datetime.date.today()
    start, end = today + datetime.timedelta(days=30), today + datetime.timedelta(days=150)
    period = {"start": start.isoformat(), "end": end.isoformat()}
    _post("/v1/companies", "sbb", {"company_id": COMPANY, "name": "Fuzz BV",
                                   "sector": "Techniek", "region": "Utrecht"})
    _post(f"/v1/companies/{COMPANY}/recognitions", "sbb", {
        "qualification": "25180",
        "valid_until": (today + datetime.timedelta(days=3 * 365)).isoformat()})
    _post("/v1/students", "school", {
        "student_id": STUDENT, "qualification": "25180", "level": 2, "pathway": "bol",
        "cohort": today.year, "first_year": True, "date_of_birth": "2006-03-01"})
    _post(f"/v1/students/{STUDENT}/learning-wish", "student", {
        "learning_goals": ["installing"], "competences": ["teamwork"],
        "sectors": ["Techniek"], "region": "Utrecht"})
    offer = _post("/v1/offers", "company", {
        "qualification": "25180", "levels": [2, 3], "slots": 3, "period": period,
        "hours_per_week": 32, "region": "Utrecht", "learning_opportunities": ["wiring"],
        "open_for_matching": True})["offer_id"]
    placement = _post("/v1/placements", "school",
                      {"student_id": STUDENT, "offer_id": offer})["placement_id"]
    report = _post("/v1/reports", "student", {
        "kind": "discrimination", "grounds": ["origin"], "company_id": COMPANY,
        "description": "A remark about my name at the interview.",
        "wants_replacement_placement": False, "consent_to_forward": True})["report_id"]
    investigation = _post("/v1/investigations", "sbb",
                          {"company_id": COMPANY})["investigation_id"]
    matching_round = _post("/v1/matching-rounds", "school", {
        "cohort": today.year, "period": period, "variant": "single"})["round_id"]
    return {
        "company_id": COMPANY, "student_id": STUDENT, "offer_id": offer,
        "placement_id": placement, "report_id": report,
        "investigation_id": investigation, "round_id": matching_round,
    }


SEEDED = _seed()


def _roles(operation):
    """The roles an operation's `security` allows (all, when it names none)."""
    requirements = operation.definition.raw.get("security") or []
    roles = [role for requirement in requirements for role in requirement.get("bearer", [])]
    return roles or list(TOKENS)


@schemathesis.auth(refresh_interval=None)
class RoleToken:
    """A token of the first allowed role; `refresh_interval=None` because the
    token differs per operation, so no cached one may be reused."""

    def get(self, case, ctx):
        return TOKENS[_roles(case.operation)[0]]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def flatmap_path_parameters(ctx, path_parameters):
    if not path_parameters:
        return st.just(path_parameters)
    real = {name: SEEDED.get(name, value) for name, value in path_parameters.items()}
    return st.sampled_from([path_parameters, real])
