"""schemathesis against a live cluster: every operation of the master's OpenAPI document.

A master and two volumes run as real processes; the document is loaded from the master's own
`GET /openapi.json`, and schemathesis generates requests for every operation in it: its
explicit examples, its coverage cases (boundaries, missing and wrong-typed parameters) and a
bounded number of fuzzed cases, valid and invalid. Every answer must

- not be a 500, nor an empty reply (a dropped connection fails the call itself);
- have a status the document lists for that operation, with the documented content type,
  body (the `{data, status, msg}` envelope) and headers (`Location` on a 307);
- and a 307 is followed once, as `curl -L` does: the volume's answer must not be a 500 or an
  empty reply either, and an error from it is the JSON envelope too.

Two runs: an open cluster (no token), where the admin and job operations run for real, and a
cluster with `[security] token` and `admin_token` that schemathesis calls with the read/write
token only, so the access checks (401/403 on the admin routes) are fuzzed too.

No operation is excluded. The open run launches, cancels and deploys jobs, starts restores,
drains and forgets nodes with whatever schemathesis makes up: what it deploys stays in the
test's temporary directory, a restore rebuilds the index from the cluster's own volumes, and a
volume it manages to drain (schemathesis reuses values it saw in answers, node names included)
is put back in service at once, so that the rest of the run still reaches the volumes. Only
the stateful phase (chains of calls along links between operations) is off: the document
declares no links.

Generation is derandomized with a fixed seed, so a run is repeatable; the token run calls the
cluster with `[security] reads_open` (the fixture's own readiness checks carry no token).
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case, CheckContext, Response

from conftest import Cluster

#: Fuzzed cases per operation (the coverage phase adds its own, a few dozen at most);
#: `FUZZ_EXAMPLES=500 FUZZ_SEED=7 pytest ...` for a longer hunt by hand.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
#: The same, for the run with tokens (the same code behind a different access check).
MAX_EXAMPLES_WITH_TOKENS = max(1, MAX_EXAMPLES // 2)
SEED = int(os.environ.get("FUZZ_SEED", "31414"))
TOKEN = "fuzz-read-write-token"
ADMIN_TOKEN = "fuzz-admin-token"
#: What a volume may answer to a request the master redirected there.
VOLUME_STATUSES = {200, 201, 206, 304, 307, 400, 401, 403, 404, 409, 412, 413, 416, 503, 507}

HYPOTHESIS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking: a failure is reported as found, and a run stays bounded.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _config(max_examples: int) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
            },
            "phases": {"stateful": {"enabled": False}},
        }
    )


# -- what every answer must be ------------------------------------------------------------


def _body_of(response: Response | requests.Response) -> bytes:
    return bytes(response.content or b"")


def no_internal_error(ctx: CheckContext, response: Response, case: Case) -> None:
    """No 500 (another 5xx must be one the document names: `status_code_conformance`)."""
    assert response.status_code != 500, f"500: {_body_of(response)[:300]!r}"


def no_empty_reply(ctx: CheckContext, response: Response, case: Case) -> None:
    """Every answer but a redirect or a HEAD carries a body (an error says what went wrong)."""
    if response.status_code in (204, 304, 307) or case.method.upper() == "HEAD":
        return
    assert _body_of(response), f"{response.status_code} with an empty body"


#: Operations whose 200 hands out a volume URL with a write ticket, for a direct upload.
HANDS_OUT_UPLOADS = {"GET /get_node/{key}", "GET /admin/restore_node/{key}"}


def _follow(case: Case, response: Response, session: requests.Session) -> int | None:
    """Go where the master sent the client, once: a 307 is followed with the same method,
    headers and body, as `curl -L` does; a volume URL handed out for a direct upload gets a
    small PUT. The volume's status (None when there was nowhere to go)."""
    sent = response.request
    headers = {k: v for k, v in sent.headers.items() if k.lower() not in ("host", "content-length")}
    if response.status_code == 307 and response.headers.get("location"):
        method, url, body = sent.method or case.method, response.headers["location"][0], sent.body
    elif response.status_code == 200 and case.operation.label in HANDS_OUT_UPLOADS:
        method, url, body = "PUT", response.json()["data"]["node"], b"fuzz"
    else:
        return None
    follow = session.request(
        method, url, headers=headers, data=body, allow_redirects=False, timeout=30
    )
    body = follow.content
    assert follow.status_code != 500, f"the volume answered 500: {body[:300]!r}"
    assert follow.status_code in VOLUME_STATUSES, f"the volume answered {follow.status_code}"
    if follow.status_code >= 400 or follow.status_code == 201:
        assert follow.headers.get("Content-Type", "").startswith("application/json"), follow.headers
        payload = follow.json()
        assert set(payload) >= {"data", "status", "msg"}, payload
        assert payload["status"] == ("ok" if follow.status_code < 400 else "ko"), payload
    elif follow.status_code not in (304, 307) and sent.method != "HEAD":
        assert body or follow.headers.get("Content-Length") == "0", "an empty reply"
    return follow.status_code


# -- the runs -----------------------------------------------------------------------------


class Tally:
    """What each operation answered (and its volume, after a 307), printed after a run."""

    def __init__(self) -> None:
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)
        self.followed: dict[str, Counter[int]] = defaultdict(Counter)
        #: Requests with a method the operation does not have (each must get 405).
        self.probes: Counter[int] = Counter()
        self.started = time.monotonic()

    def record(self, case: Case, status: int) -> None:
        if case.method.upper() != case.operation.method.upper():
            self.probes[status] += 1
        else:
            self.statuses[case.operation.label][status] += 1

    def record_followed(self, case: Case, status: int) -> None:
        self.followed[case.operation.label][status] += 1

    def print(self, title: str) -> None:
        took = time.monotonic() - self.started
        total = sum(sum(c.values()) for c in self.statuses.values()) + sum(self.probes.values())
        total += sum(sum(c.values()) for c in self.followed.values())
        print(f"\n{title}: {total} requests, {len(self.statuses)} operations, {took:.1f} s")
        width = max((len(label) for label in self.statuses), default=10)
        for label in sorted(self.statuses, key=lambda x: x.split(" ", 1)[::-1]):
            answers = " ".join(f"{s}x{n}" for s, n in sorted(self.statuses[label].items()))
            followed = " ".join(f"{s}x{n}" for s, n in sorted(self.followed[label].items()))
            volume = f"  | volume: {followed}" if followed else ""
            print(f"  {label:<{width}}  {answers}{volume}")
        probes = " ".join(f"{s}x{n}" for s, n in sorted(self.probes.items()))
        print(f"  {'(other methods)':<{width}}  {probes}")


def _load(cluster: Cluster, max_examples: int) -> Any:
    """The document as the live master serves it."""
    return schemathesis.openapi.from_url(
        f"{cluster.master_url}/openapi.json", config=_config(max_examples), timeout=10
    )


@pytest.fixture
def tally() -> Iterator[Tally]:
    tally = Tally()
    yield tally
    tally.print("schemathesis")


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def open_api(cluster_factory: Callable[..., Cluster]) -> Any:
    """The document of an open cluster (no token): every operation runs for real."""
    cluster = cluster_factory(volumes=2, loaded=True)
    return _load(cluster, MAX_EXAMPLES)


@pytest.fixture
def guarded_api(cluster_factory: Callable[..., Cluster]) -> Any:
    """The document of a cluster with a token and an admin token."""
    cluster = cluster_factory(
        volumes=2,
        loaded=True,
        settings={
            "PULZAR_SECURITY_TOKEN": TOKEN,
            "PULZAR_SECURITY_ADMIN_TOKEN": ADMIN_TOKEN,
            # The fixture's own calls (is a volume live?) carry no token.
            "PULZAR_SECURITY_READS_OPEN": "true",
        },
    )
    return _load(cluster, MAX_EXAMPLES_WITH_TOKENS)


CHECKS: list[Callable[..., Any]] = [
    no_internal_error,
    no_empty_reply,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


def _run(case: Case, http: requests.Session, tally: Tally, headers: dict[str, str]) -> None:
    response = case.call(session=http, headers=headers, timeout=30)
    tally.record(case, response.status_code)
    case.validate_response(response, checks=CHECKS)
    followed = _follow(case, response, http)
    if followed is not None:
        tally.record_followed(case, followed)
    # A real node drained (schemathesis reuses node names it saw): back in service at once.
    if case.operation.label == "POST /admin/drain/{node}" and response.status_code == 200:
        url = str(response.request.url).split("?", 1)[0]
        undone = http.post(url, params={"undo": "1"}, headers=headers, timeout=30)
        assert undone.status_code == 200, undone.text


open_schema = schemathesis.pytest.from_fixture("open_api")
guarded_schema = schemathesis.pytest.from_fixture("guarded_api")


@open_schema.parametrize()
@HYPOTHESIS
def test_every_operation_answers_as_documented(
    case: Case, http: requests.Session, tally: Tally
) -> None:
    _run(case, http, tally, {})


@guarded_schema.parametrize()
@HYPOTHESIS
def test_every_operation_answers_as_documented_behind_a_token(
    case: Case, http: requests.Session, tally: Tally
) -> None:
    _run(case, http, tally, {"Authorization": f"Bearer {TOKEN}"})
