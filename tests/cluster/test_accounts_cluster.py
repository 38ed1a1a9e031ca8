"""Users and Teams on the real control plane, against the real proxy, from the examples verbatim.

One journey, in the order a tenant lives it (docs/accounts.md):
examples/accounts/user.yaml, team.yaml and virtualkey-team.yaml are applied as they
are; the user gets a working key with its models and budget and no key
nothing tracks; the team gets its member and its spend; a member leaves;
the Team and the User are deleted, with what docs/accounts.md says happens to
the VirtualKeys that reference them.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cluster.conftest import Plane, condition, keys_with_alias, poll_once, until
from tests.conftest import ACCOUNTS, Proxy, chat

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]
EXAMPLE_FILES = ("user.yaml", "team.yaml", "virtualkey-team.yaml")
USER_ID, TEAM_ID = "team-a.alice", "team-a.research"
ALIASES = ("alice-key", "research-batch")


def example(name: str) -> Obj:
    found: Obj = yaml.safe_load((ACCOUNTS / name).read_text())
    return found


def proxy_get(proxy: Proxy, path: str, **params: str) -> tuple[int, Obj]:
    with proxy.admin() as admin:
        answer = admin.get(path, params=params)
    return answer.status_code, answer.json()


def team_members(proxy: Proxy, team_id: str) -> dict[str, str]:
    """user ID -> role, as the proxy has them now (none while it answers anything else)."""
    _, info = proxy_get(proxy, "/team/info", team_id=team_id)
    members = (info.get("team_info") or {}).get("members_with_roles") or []
    return {m["user_id"]: m["role"] for m in members}


def clean_proxy(proxy: Proxy) -> None:
    """What an earlier run may have left on the proxy."""
    with proxy.admin() as admin:
        admin.post("/key/delete", json={"key_aliases": list(ALIASES)})
        admin.post("/team/delete", json={"team_ids": [TEAM_ID]})
        admin.post("/user/delete", json={"user_ids": [USER_ID]})


@pytest.fixture
def examples(platform: Plane, proxy: Proxy) -> Iterator[Plane]:
    for name in EXAMPLE_FILES:
        platform.kubectl("delete", "-f", str(ACCOUNTS / name), "--wait=true", check=False)
    clean_proxy(proxy)
    yield platform
    for name in EXAMPLE_FILES:
        platform.kubectl("delete", "-f", str(ACCOUNTS / name), "--wait=false", check=False)
    for team in platform.items("team", "team-a"):
        if team["metadata"]["name"].startswith("admins-"):
            platform.kubectl(
                "delete", "team", team["metadata"]["name"], "-n", "team-a", check=False
            )


def ready(plane: Plane, kind: str, name: str, seconds: float = 180) -> Obj:
    def check() -> Obj | None:
        found = plane.get(kind, name, "team-a")
        return found if condition(found, "Ready").get("status") == "True" else None

    found: Obj = until(check, f"{kind} {name} to be Ready", seconds)
    return found


@pytest.mark.timeout(900)  # one long journey of steps that each wait on the control plane
def test_users_and_teams_as_the_readme_says(
    examples: Plane, proxy: Proxy, poller_kubeconfig: Path
) -> None:
    plane = examples
    for name in EXAMPLE_FILES:
        plane.kubectl("apply", "-f", str(ACCOUNTS / name))
    started = time.monotonic()

    def step(done: str) -> None:
        print(f"{time.monotonic() - started:6.1f} s  {done}")  # noqa: T201 - with -s, a timeline

    key = the_user_gets_its_key(plane, proxy)
    step("the user and its key")
    the_team_gets_its_member_and_key(plane, proxy)
    step("the team, its member and its key")
    members_are_kept_in_step(plane, proxy)
    step("members kept in step")
    a_member_added_on_the_proxy_is_removed(proxy)
    step("a member added on the proxy removed")
    the_poller_shows_spend(plane, poller_kubeconfig)
    step("the poller")
    a_member_leaves(plane, proxy, key)
    step("a member leaves")
    the_team_is_deleted(plane, proxy)
    step("the team deleted and back")
    the_user_is_deleted(plane, proxy, key)
    step("the user deleted")


def the_user_gets_its_key(plane: Plane, proxy: Proxy) -> str:
    """An ordinary VirtualKey with the user's models and budget, and no other key."""
    user = ready(plane, "user", "alice")
    assert user["status"]["userID"] == USER_ID
    assert user["status"]["virtualKeyRef"] == "alice-key"
    ready(plane, "virtualkey", "alice-key")
    key = plane.secret_value("team-a", "alice-key-litellm-key", "key")
    assert chat(proxy, key) == 200
    assert chat(proxy, key, "gpt-4o-mini") != 200  # not one of the user's models
    (live,) = keys_with_alias(proxy, "alice-key")
    assert live["user_id"] == USER_ID
    assert live["models"] == ["gpt-4o"]
    assert live["max_budget"] == 5.0
    code, info = proxy_get(proxy, "/user/info", user_id=USER_ID)
    assert code == 200
    # The default role calls models but cannot mint keys of its own (LiteLLM answers 401).
    assert info["user_info"]["user_role"] == "internal_user_viewer"
    minted = httpx.post(
        f"{proxy.url}/key/generate",
        headers={"Authorization": f"Bearer {key}"},
        json={"key_alias": "alice-minted", "models": []},
        timeout=30,
    )
    assert minted.status_code == 401, minted.text
    assert info["user_info"]["max_budget"] == 5.0
    # auto_create_key: false: the user's only key is the one the VirtualKey tracks.
    assert [k["key_alias"] for k in info["keys"]] == ["alice-key"]
    return key


def the_team_gets_its_member_and_key(plane: Plane, proxy: Proxy) -> None:
    """alice joins through her User's spec.teams; research-batch joins through teamRef."""
    team = ready(plane, "team", "research")
    assert team["status"]["teamID"] == TEAM_ID
    _, info = proxy_get(proxy, "/team/info", team_id=TEAM_ID)
    members = {
        m["user_id"]: m["role"]
        for m in (info.get("team_info") or {}).get("members_with_roles") or []
    }
    assert members.get(USER_ID) == "user"
    ready(plane, "virtualkey", "research-batch")
    (batch,) = keys_with_alias(proxy, "research-batch")
    assert batch["team_id"] == TEAM_ID
    batch_key = plane.secret_value("team-a", "research-batch-litellm-key", "key")
    assert chat(proxy, batch_key) == 200


def member_budget(proxy: Proxy) -> float | None:
    _, info = proxy_get(proxy, "/team/info", team_id=TEAM_ID)
    for membership in info.get("team_memberships") or []:
        if membership["user_id"] == USER_ID:
            return (membership.get("litellm_budget_table") or {}).get("max_budget")
    return None


def members_are_kept_in_step(plane: Plane, proxy: Proxy) -> None:
    """spec.members: a member's budget is updated in place; a role the proxy refuses is
    reported in our own words, and the member stays as it was."""
    team = copy.deepcopy(example("team.yaml"))
    for budget in ("2", "3"):
        team["spec"]["members"] = [{"userRef": {"name": "alice"}, "maxBudgetInTeam": budget}]
        plane.apply(team)
        wanted = float(budget)
        until(lambda: member_budget(proxy) == wanted, f"alice's budget {budget}")  # noqa: B023
    plane.kubectl("apply", "-f", str(ACCOUNTS / "team.yaml"))  # back to spec.teams alone
    ready(plane, "team", "research")
    # Another team, where alice would be admin (LiteLLM Enterprise only). provider-http
    # retries the refused update at every poll, so Crossplane throttles that Team's
    # events for a while: a Team of its own keeps that away from research.
    admins = copy.deepcopy(example("team.yaml"))
    name = f"admins-{os.urandom(3).hex()}"  # Crossplane's throttling is per name: none carried over
    admins["metadata"]["name"] = name
    admins["spec"] |= {"teamAlias": name, "members": [{"userRef": {"name": "alice"}}]}
    plane.apply(admins)
    ready(plane, "team", name)
    admins["spec"]["members"][0]["role"] = "admin"
    plane.apply(admins)

    def refused() -> str:
        found = condition(plane.get("team", name, "team-a"), "TeamReady")
        message = str(found.get("message") or "")
        return message if found.get("reason") == "MembersPending" and "alice" in message else ""

    message = until(refused, "TeamReady to name the refused member", 180)
    assert "premium" not in message.lower()  # LiteLLM's own words stay out
    _, info = proxy_get(proxy, "/team/info", team_id=f"team-a.{name}")
    roles = {
        m["user_id"]: m["role"]
        for m in (info.get("team_info") or {}).get("members_with_roles") or []
    }
    assert roles[USER_ID] == "user"
    plane.kubectl("delete", "team", name, "-n", "team-a", "--wait=true", "--timeout=3m")
    until(lambda: proxy_get(proxy, "/team/info", team_id=f"team-a.{name}")[0] == 404, name)


def a_member_added_on_the_proxy_is_removed(proxy: Proxy) -> None:
    """Membership is a complete set: someone added in LiteLLM's UI is taken out again."""
    intruder = "team-a.intruder"
    with proxy.admin() as admin:
        admin.post("/user/delete", json={"user_ids": [intruder]})
        made = admin.post(
            "/user/new",
            json={
                "user_id": intruder,
                "user_email": "intruder@example.com",
                "auto_create_key": False,
            },
        )
        assert made.status_code == 200, made.text
        added = admin.post(
            "/team/member_add",
            json={"team_id": TEAM_ID, "member": [{"user_id": intruder, "role": "user"}]},
        )
        assert added.status_code == 200, added.text

    def removed() -> bool:
        _, info = proxy_get(proxy, "/team/info", team_id=TEAM_ID)
        members = {
            m["user_id"] for m in (info.get("team_info") or {}).get("members_with_roles") or []
        }
        return intruder not in members and USER_ID in members

    until(removed, "the member added on the proxy to be removed", 180)
    with proxy.admin() as admin:
        admin.post("/user/delete", json={"user_ids": [intruder]})


def the_poller_shows_spend(plane: Plane, poller_kubeconfig: Path) -> None:
    """The team's spend and members, the user's spend, with the shipped poller RBAC."""

    def polled() -> Obj | None:
        done = poll_once(poller_kubeconfig)
        assert done.returncode == 0, done.stderr
        found = plane.get("team", "research", "team-a") or {}
        return found if float(found.get("status", {}).get("spend") or 0) > 0 else None

    team = until(polled, "the team's spend in its status", 90)
    assert team["status"]["members"] == [{"userID": USER_ID, "role": "user"}]
    assert team["status"]["budgetResetAt"]
    user = plane.get("user", "alice", "team-a") or {}
    assert float(user["status"]["spend"]) > 0


def a_member_leaves(plane: Plane, proxy: Proxy, key: str) -> None:
    """Her membership goes on the proxy; she and her key stay, updated in place."""
    changed = copy.deepcopy(example("user.yaml"))
    changed["spec"]["teams"] = []
    changed["spec"]["maxBudget"] = "6"  # and a new budget, for the user and its key
    plane.apply(changed)
    until(
        lambda: proxy_get(proxy, "/user/info", user_id=USER_ID)[1]["user_info"]["max_budget"] == 6,
        "the user's new budget",
    )
    until(lambda: keys_with_alias(proxy, "alice-key")[0]["max_budget"] == 6, "its key's budget")

    def left() -> bool:
        _, info = proxy_get(proxy, "/team/info", team_id=TEAM_ID)
        return USER_ID not in {
            m["user_id"] for m in (info.get("team_info") or {}).get("members_with_roles") or []
        }

    until(left, "alice to leave the team on the proxy", 180)
    assert chat(proxy, key) == 200


def the_team_is_deleted(plane: Plane, proxy: Proxy) -> None:
    """LiteLLM deletes the team and its keys; the VirtualKey that references it stays,
    with its Secret, and says why it cannot go on."""
    plane.kubectl("delete", "team", "research", "-n", "team-a", "--wait=true", "--timeout=3m")
    until(lambda: proxy_get(proxy, "/team/info", team_id=TEAM_ID)[0] == 404, "the team to go")
    until(lambda: keys_with_alias(proxy, "research-batch") == [], "the team's key to go")

    def refused() -> str:
        found = plane.get("virtualkey", "research-batch", "team-a")
        message = str(condition(found, "Synced").get("message") or "")
        return message if "spec.teamRef" in message else ""

    message = until(refused, "the VirtualKey to name its missing Team", 180)
    assert "Team team-a/research does not exist" in message
    dead = plane.secret_value("team-a", "research-batch-litellm-key", "key")
    assert chat(proxy, dead) != 200
    # The Team is back: the VirtualKey issues a new key, in the new team.
    plane.kubectl("apply", "-f", str(ACCOUNTS / "team.yaml"))

    def new_key() -> str:
        value = plane.secret_value("team-a", "research-batch-litellm-key", "key")
        keys = keys_with_alias(proxy, "research-batch")
        return value if value != dead and keys and keys[0]["team_id"] == TEAM_ID else ""

    fresh = until(new_key, "a new key in the recreated team", 240)
    ready(plane, "virtualkey", "research-batch")
    assert chat(proxy, fresh) == 200
    plane.kubectl("delete", "team", "research", "-n", "team-a", "--wait=true", "--timeout=3m")
    until(lambda: keys_with_alias(proxy, "research-batch") == [], "the team's key to go again")


def the_user_is_deleted(plane: Plane, proxy: Proxy, key: str) -> None:
    """LiteLLM deletes the user and its keys; its VirtualKey goes with it."""
    plane.kubectl("delete", "user", "alice", "-n", "team-a", "--wait=true", "--timeout=3m")
    until(lambda: proxy_get(proxy, "/user/info", user_id=USER_ID)[0] == 404, "the user to go")
    until(lambda: plane.get("virtualkey", "alice-key", "team-a") is None, "its VirtualKey to go")
    until(lambda: keys_with_alias(proxy, "alice-key") == [], "its key to go")
    assert chat(proxy, key) != 200
