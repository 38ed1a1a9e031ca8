"""Users' and Teams' spend in their status: in bulk, from the real proxy, with the key rules.

- the spend, budget reset and members of a user and a team the real proxy
  holds reach their status in two LiteLLM requests, whatever their number;
- a proxy that is down, or answers nonsense, writes nothing (the last
  values stay), and another proxy's Users and Teams are written meanwhile;
- `account_patch` writes only what changed (a table).
"""

from __future__ import annotations

import os
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.accounts import Account, account_patch
from function.poller.cycle import Poller
from function.poller.kube import KubeCluster
from tests.poller.conftest import MASTER_NAMESPACE, MASTER_SECRET, instance_name, make_poller
from tests.poller.fake_apiserver import FakeAPIServer

RUN = uuid.uuid4().hex[:8]
NAMESPACE = "team-a"
needs_proxy = pytest.mark.skipif(
    not os.environ.get("LITELLM_URL"), reason="LITELLM_URL is unset: no LiteLLM proxy"
)


def account(plural: str, name: str, url: str, status: dict[str, Any] | None = None) -> Any:
    """A User or Team as the function leaves it, naming the instance at `url`."""
    connection = {"instanceRef": {"name": instance_name(url), "namespace": MASTER_NAMESPACE}}
    spec: dict[str, Any] = {"connectionRef": connection}
    if plural == "users":
        spec["userEmail"] = f"{name}@example.com"
    else:
        spec["teamAlias"] = name
    return {
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
        "status": status or {},
    }


@pytest.fixture
def poller(apiserver: FakeAPIServer, cluster: KubeCluster) -> Poller:
    master = os.environ.get("LITELLM_MASTER_KEY", "sk-unused")
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": master})
    return make_poller(cluster)


@needs_proxy
@pytest.mark.e2e
def test_spend_budget_and_members_in_two_requests(
    proxy: httpx.Client, apiserver: FakeAPIServer, poller: Poller
) -> None:
    url = os.environ["LITELLM_URL"]
    user, team = f"u-{RUN}", f"t-{RUN}"
    user_id, team_id = f"{NAMESPACE}.{user}", f"{NAMESPACE}.{team}"
    made = proxy.post(
        "/user/new",
        json={"user_id": user_id, "user_email": f"{user}@example.com", "auto_create_key": False},
    )
    assert made.status_code == 200, made.text
    made = proxy.post(
        "/team/new", json={"team_id": team_id, "team_alias": team, "budget_duration": "30d"}
    )
    assert made.status_code == 200, made.text
    added = proxy.post(
        "/team/member_add",
        json={"team_id": team_id, "member": [{"user_id": user_id, "role": "user"}]},
    )
    assert added.status_code == 200, added.text
    key = proxy.post(
        "/key/generate", json={"user_id": user_id, "team_id": team_id, "models": ["gpt-4o"]}
    ).json()["key"]
    chat = httpx.post(
        f"{url}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )
    assert chat.status_code == 200
    user_key = apiserver.add("users", account("users", user, url))
    team_key = apiserver.add("teams", account("teams", team, url))
    others = [apiserver.add("teams", account("teams", f"other-{i}-{RUN}", url)) for i in range(20)]
    try:

        def spent() -> bool:
            poller.cycle()
            return Decimal(apiserver.status(team_key).get("spend") or "0") > 0

        for _ in range(30):  # LiteLLM writes spend in batches
            if spent():
                break
            time.sleep(1)
        report = poller.cycle()
        assert report.accounts == 22
        assert report.requests == 2  # one user listing, one team listing: bulk
        team_status = apiserver.status(team_key)
        assert Decimal(team_status["spend"]) > 0
        assert team_status["members"] == [{"userID": user_id, "role": "user"}]
        assert team_status["budgetResetAt"].endswith("Z")
        assert Decimal(apiserver.status(user_key)["spend"]) > 0
        # Teams the proxy does not have are not written: nothing to say yet.
        assert all(apiserver.writes_to(k) == [] for k in others)
        writes = len(apiserver.writes)
        poller.cycle()
        assert len(apiserver.writes) == writes  # nothing changed, nothing written
    finally:
        proxy.post("/team/delete", json={"team_ids": [team_id]})
        proxy.post("/user/delete", json={"user_ids": [user_id]})


@pytest.mark.parametrize("broken", ["down", "nonsense"])
def test_a_broken_proxy_keeps_the_last_values_and_others_go_on(
    apiserver: FakeAPIServer, poller: Poller, litellm: FakeLiteLLM, broken: str
) -> None:
    # "nonsense": a proxy without the listing routes (FakeLiteLLM has only keys).
    bad_url = "http://127.0.0.1:9" if broken == "down" else litellm.url
    last = {"spend": "1.5", "budgetResetAt": "2027-01-01T00:00:00Z", "members": []}
    bad = apiserver.add("teams", account("teams", f"bad-{RUN}", bad_url, status=last))
    bad_user = apiserver.add("users", account("users", f"bad-{RUN}", bad_url, status=last))
    good = None
    if os.environ.get("LITELLM_URL"):
        good = apiserver.add("users", account("users", f"nobody-{RUN}", os.environ["LITELLM_URL"]))
    report = poller.cycle()
    assert report.accounts == (3 if good else 2)
    assert apiserver.status(bad) == last
    assert apiserver.status(bad_user) == last
    assert apiserver.writes_to(bad) == []
    if good is not None:
        assert apiserver.status(good) == {}  # the proxy has no such user: nothing to write
    # The broken instance backs off, as it would for its keys.
    bad_instance = f"{bad_url} ({MASTER_NAMESPACE}/{MASTER_SECRET})"
    assert poller.instance(bad_instance).backoff.failures == 1
    assert not poller.instance(bad_instance).backoff.ready()


@pytest.mark.parametrize(
    ("status", "found", "team", "patch"),
    [
        pytest.param({}, None, True, None, id="not-on-the-proxy-writes-nothing"),
        pytest.param(
            {},
            Account(Decimal("0.0048"), "2027-01-01T00:00:00Z", (("team-a.alice", "user"),)),
            True,
            {
                "spend": "0.0048",
                "budgetResetAt": "2027-01-01T00:00:00Z",
                "members": [{"userID": "team-a.alice", "role": "user"}],
            },
            id="a-team-first-seen",
        ),
        pytest.param(
            {"spend": "0.0048", "budgetResetAt": None},
            Account(Decimal("0.0096"), None),
            False,
            {"spend": "0.0096"},
            id="only-what-changed",
        ),
        pytest.param(
            {"spend": "10", "budgetResetAt": None},
            Account(Decimal("10.000000"), None),
            False,
            None,
            id="the-same-amount-written-differently",
        ),
    ],
)
def test_account_patch(
    status: dict[str, Any], found: Account | None, team: bool, patch: dict[str, Any] | None
) -> None:
    assert account_patch(status, found, team=team) == patch


def test_a_kind_the_rbac_does_not_grant_stops_no_other(
    apiserver: FakeAPIServer, poller: Poller, litellm: FakeLiteLLM
) -> None:
    """An RBAC from before legacy Users: listing xusers is forbidden, teams are still read."""
    apiserver.fail("GET", "/xusers", 403, times=1)
    apiserver.add("teams", account("teams", f"t-{RUN}", litellm.url))
    report = poller.cycle()
    assert report.accounts == 1
