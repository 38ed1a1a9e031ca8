"""Users' and Teams' spend in their status: in bulk, from the real proxy, with the key rules.

- the spend, budget reset and members of a user and a team the real proxy
  holds reach their status in two LiteLLM requests, whatever their number;
- a LiteLLM user or team counts only if its ID matches AND its provenance
  names the object: a tenant whose `<namespace>.<id>` is a platform user's
  or team's ID gets nothing of theirs (on the real proxy);
- a proxy that is down, or answers nonsense, writes nothing (the last
  values stay), and another proxy's Users and Teams are written meanwhile;
- one user or team whose object is hostile (a spend of 1e300, NaN, a
  4,400-digit integer, a string) is that object's problem alone; listings
  stop at the page cap and the deadline, and on the stop signal;
- `account_patch` writes only what changed (a table).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller import accounts as accounts_module
from function.poller.accounts import Account, account_patch
from function.poller.cycle import Poller
from function.poller.kube import KubeCluster
from tests.poller.conftest import (
    MASTER_NAMESPACE,
    MASTER_SECRET,
    RawProxy,
    Writer,
    answer,
    instance_name,
    make_poller,
    routes,
    stamp,
)
from tests.poller.fake_apiserver import FakeAPIServer

RUN = uuid.uuid4().hex[:8]
NAMESPACE = "team-a"
needs_proxy = pytest.mark.skipif(
    not os.environ.get("LITELLM_URL"), reason="LITELLM_URL is unset: no LiteLLM proxy"
)


def account(
    plural: str,
    name: str,
    url: str,
    status: dict[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    **spec_fields: Any,
) -> Any:
    """A User or Team as the function leaves it, naming the instance at `url`."""
    connection = {"instanceRef": {"name": instance_name(url), "namespace": MASTER_NAMESPACE}}
    spec: dict[str, Any] = {"connectionRef": connection, **spec_fields}
    if plural == "users":
        spec["userEmail"] = f"{name}@example.com"
    else:
        spec["teamAlias"] = name
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
        "status": status or {},
    }


@pytest.fixture
def poller(apiserver: FakeAPIServer, cluster: KubeCluster) -> Poller:
    master = os.environ.get("LITELLM_MASTER_KEY", "sk-unused")
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": master})
    return make_poller(cluster)


def _spend_as_a_team_member(proxy: httpx.Client, url: str, user: str, team: str) -> None:
    """The function's user and team on the real proxy; the user spends with a team key."""
    user_id, team_id = f"{NAMESPACE}.{user}", f"{NAMESPACE}.{team}"
    made = proxy.post(
        "/user/new",
        json={
            "user_id": user_id,
            "user_email": f"{user}@example.com",
            "auto_create_key": False,
            "metadata": stamp("user", NAMESPACE, user),
        },
    )
    assert made.status_code == 200, made.text
    made = proxy.post(
        "/team/new",
        json={
            "team_id": team_id,
            "team_alias": team,
            "budget_duration": "30d",
            "metadata": stamp("team", NAMESPACE, team),
        },
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


@needs_proxy
@pytest.mark.e2e
def test_spend_budget_and_members_in_two_requests(
    proxy: httpx.Client, apiserver: FakeAPIServer, poller: Poller
) -> None:
    url = os.environ["LITELLM_URL"]
    user, team = f"u-{RUN}", f"t-{RUN}"
    user_id, team_id = f"{NAMESPACE}.{user}", f"{NAMESPACE}.{team}"
    _spend_as_a_team_member(proxy, url, user, team)
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


@needs_proxy
@pytest.mark.e2e
def test_a_colliding_id_gets_nothing_of_the_platforms_user_or_team(
    proxy: httpx.Client, apiserver: FakeAPIServer, poller: Poller
) -> None:
    url = os.environ["LITELLM_URL"]
    # The platform's own user and team (no provenance of any User or Team), with spend.
    namespace = f"john-{RUN}"
    user_id, team_id = f"{namespace}.doe@corp.example", f"{namespace}.doe-team"
    assert (
        proxy.post(
            "/user/new", json={"user_id": user_id, "spend": 3.5, "auto_create_key": False}
        ).status_code
        == 200
    )
    made = proxy.post("/team/new", json={"team_id": team_id, "budget_duration": "30d"})
    assert made.status_code == 200, made.text
    member = {"team_id": team_id, "member": [{"user_id": user_id, "role": "user"}]}
    assert proxy.post("/team/member_add", json=member).status_code == 200
    # A tenant named `john` picks the IDs that make the same LiteLLM IDs, and may even
    # write them into its own status (its edit role allows it).
    forged = {"userID": user_id, "teamID": team_id}
    user_key = apiserver.add(
        "users",
        account("users", "doe", url, forged, namespace=namespace, userID="doe@corp.example"),
    )
    team_key = apiserver.add(
        "teams", account("teams", "doe", url, forged, namespace=namespace, teamID="doe-team")
    )
    # A platform user the tenant named in its own namespace's stamp, but under another
    # object's name, does not count either.
    other_user = f"{namespace}.other"
    stamped = {"user_id": other_user, "spend": 1, "metadata": stamp("user", namespace, "else")}
    assert proxy.post("/user/new", json={**stamped, "auto_create_key": False}).status_code == 200
    other_key = apiserver.add("users", account("users", "other", url, namespace=namespace))
    try:
        report = poller.cycle()
        assert report.accounts == 3
        assert report.unavailable == []
        for key in (user_key, team_key, other_key):
            status = apiserver.status(key)
            assert "spend" not in status, key
            assert "members" not in status, key
            assert apiserver.writes_to(key) == [], key
    finally:
        proxy.post("/team/delete", json={"team_ids": [team_id]})
        proxy.post("/user/delete", json={"user_ids": [user_id, other_user]})


def _users(*objects: dict[str, Any]) -> bytes:
    return json.dumps({"users": list(objects), "total_pages": 1, "page": 1}).encode()


def _teams(*objects: dict[str, Any], total_pages: int = 1) -> bytes:
    return json.dumps({"teams": list(objects), "total_pages": total_pages}).encode()


def _user(name: str, spend: Any) -> dict[str, Any]:
    return {
        "user_id": f"{NAMESPACE}.{name}",
        "spend": spend,
        "metadata": stamp("user", NAMESPACE, name),
    }


HOSTILE_SPENDS = {
    "1e300": b"1e300",
    "NaN": b"NaN",
    "Infinity": b"-Infinity",
    "4400 digits": b"9" * 4400,
    "400 digits": b"9" * 400,
    "a string": b'"lots"',
    "an object": b'{"usd": 1}',
    "negative": b"-5",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SPENDS))
def test_one_hostile_user_or_team_stays_with_its_object(
    apiserver: FakeAPIServer,
    poller: Poller,
    raw: Callable[[Writer], RawProxy],
    case: str,
) -> None:
    marker = "__HOSTILE__"
    good_team = {
        "team_id": f"{NAMESPACE}.good",
        "spend": 0.5,
        "metadata": stamp("team", NAMESPACE, "good"),
    }
    bad_team = {**good_team, "team_id": f"{NAMESPACE}.bad", "spend": marker}
    bad_team["metadata"] = stamp("team", NAMESPACE, "bad")
    users = _users(_user("good", 0.25), _user("bad", marker))
    teams = _teams(good_team, bad_team)
    hostile = json.dumps(marker).encode()
    proxy = raw(
        routes(
            {
                "/user/list": users.replace(hostile, HOSTILE_SPENDS[case]),
                "/v2/team/list": teams.replace(hostile, HOSTILE_SPENDS[case]),
            }
        )
    )
    last = {"spend": "1.5"}
    keys = {
        (plural, name): apiserver.add(
            plural, account(plural, name, proxy.url, dict(last) if name == "bad" else None)
        )
        for plural in ("users", "teams")
        for name in ("good", "bad")
    }
    report = poller.cycle()  # must not raise
    assert report.unavailable == [], case
    assert apiserver.status(keys["users", "good"])["spend"] == "0.25"
    assert apiserver.status(keys["teams", "good"])["spend"] == "0.5"
    for plural in ("users", "teams"):
        assert apiserver.status(keys[plural, "bad"]) == last, (case, plural)


def test_an_error_with_one_user_is_that_users_alone(
    apiserver: FakeAPIServer,
    poller: Poller,
    raw: Callable[[Writer], RawProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = raw(routes({"/user/list": _users(_user("good", 0.25), _user("bad", 2))}))
    good = apiserver.add("users", account("users", "good", proxy.url))
    bad = apiserver.add("users", account("users", "bad", proxy.url))
    real = accounts_module.account_patch

    def patch(status: dict[str, Any], found: Account | None, *, team: bool) -> Any:
        if found is not None and found.spend == 2:
            raise ZeroDivisionError
        return real(status, found, team=team)

    monkeypatch.setattr("function.poller.accounts.account_patch", patch)
    poller.cycle()
    assert apiserver.status(good)["spend"] == "0.25"
    assert apiserver.status(bad) == {}


def test_team_pages_stop_at_the_cap_and_keys_go_on(
    apiserver: FakeAPIServer, cluster: KubeCluster, raw: Callable[[Writer], RawProxy]
) -> None:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": "sk-master"})
    other = {"team_id": "someone-else", "spend": 1}
    proxy = raw(
        routes(
            {
                "/v2/team/list": _teams(other, total_pages=10**9),
                "/key/list": b'{"keys": [], "total_pages": 1}',
            }
        )
    )
    team = apiserver.add("teams", account("teams", "t", proxy.url, {"spend": "1"}))
    report = make_poller(cluster, litellm_max_pages=5).cycle()
    assert proxy.requests == 5  # the team pages read, then it stops
    assert apiserver.status(team) == {"spend": "1"}
    assert report.accounts == 1


def test_a_slow_user_listing_is_cut_at_the_deadline(
    apiserver: FakeAPIServer, cluster: KubeCluster, raw: Callable[[Writer], RawProxy]
) -> None:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": "sk-master"})

    def slow(sock: socket.socket, path: str) -> None:
        time.sleep(0.4)
        body = json.dumps({"users": [{"user_id": "someone-else"}], "total_pages": 99}).encode()
        answer(body)(sock, path)

    proxy = raw(slow)
    user = apiserver.add("users", account("users", "u", proxy.url, {"spend": "1"}))
    poller = make_poller(cluster, litellm_deadline=1.0, litellm_timeout=5.0)
    started = time.monotonic()
    report = poller.cycle()
    assert time.monotonic() - started < 2.5
    assert apiserver.status(user) == {"spend": "1"}
    assert report.accounts == 1
    instance = f"{proxy.url} ({MASTER_NAMESPACE}/{MASTER_SECRET})"
    assert poller.instance(instance).backoff.failures == 1


def test_the_stop_signal_ends_a_listing(
    apiserver: FakeAPIServer, cluster: KubeCluster, raw: Callable[[Writer], RawProxy]
) -> None:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": "sk-master"})
    stop = threading.Event()

    def stopping(sock: socket.socket, path: str) -> None:
        stop.set()  # SIGTERM arrives while the first page is being read
        body = json.dumps({"teams": [{"team_id": "someone-else"}], "total_pages": 50}).encode()
        answer(body)(sock, path)

    proxy = raw(stopping)
    team = apiserver.add("teams", account("teams", "t", proxy.url, {"spend": "1"}))
    poller = make_poller(cluster)
    report = poller.cycle(stop=stop)
    assert proxy.requests == 1
    assert apiserver.writes == []
    assert apiserver.status(team) == {"spend": "1"}
    instance = f"{proxy.url} ({MASTER_NAMESPACE}/{MASTER_SECRET})"
    assert report.not_reached == [instance]
    assert poller.instance(instance).backoff.failures == 0  # stopping is no failure
