"""Hostile tenants against the real proxy: nothing a tenant writes decides what is deleted,
whose user or team a key joins, which key a Secret holds, or what money a key starts with.

Each story plays the tenant the way Crossplane's edit roles let it: writing its XR's
status (every field), rewriting Secrets in its namespace, choosing IDs and aliases that
collide with another tenant's or the platform's, and minting keys where a role allows it.
The provider-http model (tests/e2e/provider_http.py) and the model of Crossplane
(tests/e2e/cluster.py) run the function's Requests against the real LiteLLM proxy.
The cross-tenant stories run on the real control plane too
(tests/cluster/test_hostile_cluster.py).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from function.keys.secrets import token_of
from tests.conftest import Proxy, chat, platform_admin
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import platform_policies

pytestmark = pytest.mark.e2e

MASTER_STAMP = "default_user_id"


def tenants(proxy: Proxy, *namespaces: str, **keys: Any) -> list[dict[str, Any]]:
    """The shipped policy, its rule granting the instance to `namespaces` too."""
    policies = platform_policies(proxy.url)
    rule = policies[0]["spec"]["rules"][0]
    rule["namespaces"] = {"names": ["team-a", *namespaces]}
    rule.pop("teams", None)  # no bound team: the stories make their own
    if keys:
        rule["keys"] = keys
    return policies


def key_info(proxy: Proxy, token: str) -> dict[str, Any]:
    with proxy.admin() as admin:
        found: dict[str, Any] = admin.get("/key/info", params={"key": token}).json().get("info")
    return found or {}


def token(cluster: Cluster) -> str:
    assert cluster.xr is not None
    return str(cluster.xr["status"]["tokenHash"])


def forge_every_status_field(cluster: Cluster, other_token: str) -> None:
    """What a tenant with Crossplane's edit roles can write: every status field, hostile."""
    assert cluster.xr is not None
    cluster.xr["status"] = {
        **cluster.xr.get("status", {}),
        "tokenHash": other_token,
        "strayTokens": [other_token],
        "reapedTokens": [],
        "exposedTokens": [other_token],
        "carry": {"tokenHash": other_token, "spend": "0"},
        "aliasHolder": {"owner": "this", "tokenHash": other_token, "spend": "0"},
        "rotation": {"pending": {"tokenHash": other_token, "carriedSpend": "0"}},
        "currentSpend": "0",
    }


def test_a_tenant_cannot_get_another_tenants_key_deleted(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    """Tenant A learns B's token, takes B's alias, forges its status with that token, makes
    a run Fatal and deletes its VirtualKey: B's key keeps working and stays B's."""
    policies = tenants(proxy, "team-b")
    b = make_cluster(policies=policies, namespace="team-b")
    b.converge()
    b_key, b_token = b.key(), token(b)
    assert b.xr is not None
    a = make_cluster(policies=policies, keyAlias=b.xr["spec"]["keyAlias"])
    a.converge()
    status, reason, message = a.condition()
    assert (status, reason) == ("False", "AliasConflict")
    assert "made for another namespace" in message
    assert b_token not in message
    forge_every_status_field(a, b_token)
    a.converge()
    assert not [n for n in a.composed if n.startswith("stray-")]
    # A run that is Fatal (nothing applied, nothing deleted), then fixed.
    assert a.xr is not None
    a.xr["spec"]["maxBudget"] = "not money"
    a.compose()
    assert a.last is not None and any("maxBudget" in r.message for r in a.last.results)
    a.xr["spec"]["maxBudget"] = "10"
    forge_every_status_field(a, b_token)
    a.converge()
    a.delete_xr()
    a.converge()
    assert not a.deleting
    assert chat(proxy, b_key) == 200
    assert key_info(proxy, b_token).get("status") != "deleted"
    b.converge()
    assert (b.key(), token(b)) == (b_key, b_token)
    assert b.condition()[:2] == ("True", "Available")


def test_a_forged_status_hides_no_stray_key(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    """A key made from a rewritten Secret is deleted whatever the status says (a forged
    reapedTokens once hid it, and it outlived its VirtualKey)."""
    cluster = make_cluster()
    cluster.compose()
    assert cluster.xr is not None
    chosen = ("sk-TenantChoseThisKey" + uuid.uuid4().hex + "0" * 46)[:46]
    secret = (cluster.namespace, cluster.xr["status"]["keySecretRef"])
    cluster.secrets[secret]["key"] = chosen
    cluster.provider()  # CREATE sends the tenant's key
    assert chat(proxy, chosen) == 200
    cluster.xr["status"]["reapedTokens"] = [token_of(chosen)]
    cluster.xr["status"]["strayTokens"] = []
    for _ in range(3):
        cluster.clock.advance(31)
        cluster.converge(rounds=8)
        cluster.xr["status"]["reapedTokens"] = [token_of(chosen)]
    assert chat(proxy, chosen) == 401
    cluster.delete_xr()
    cluster.converge()
    assert chat(proxy, chosen) == 401


def test_a_revoked_key_cannot_be_brought_back_through_the_next_key_secret(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    policies = tenants(proxy, minRotationInterval="1s")
    cluster = make_cluster(policies=policies, rotation={"trigger": 0, "gracePeriod": "2s"})
    cluster.converge()
    revoked, revoked_token = cluster.key(), token(cluster)
    with proxy.admin() as admin:  # an admin revokes it
        assert admin.post("/key/delete", json={"keys": [revoked_token]}).status_code == 200
    cluster.converge()
    assert cluster.key() != revoked
    assert cluster.xr is not None
    time.sleep(1.1)  # minRotationInterval: a second after the key's Request was made
    cluster.xr["spec"]["rotation"]["trigger"] = 1
    cluster.compose()  # the rotation starts: the new key waits in the next-key Secret
    next_name = f"{cluster.xr['status']['keySecretRef']}-next"
    assert (cluster.namespace, next_name) in cluster.secrets
    # The tenant puts the revoked key there, and its token in the status.
    cluster.secrets[(cluster.namespace, next_name)]["key"] = revoked
    cluster.composed["next-key"]["data"]["key"] = _b64(revoked)
    cluster.xr["status"]["rotation"] = {"pending": {"tokenHash": revoked_token}}
    for _ in range(6):
        cluster.converge(rounds=4)
        assert cluster.key() != revoked
    assert chat(proxy, revoked) == 401
    assert chat(proxy, cluster.key()) == 200


def _b64(text: str) -> str:
    import base64  # noqa: PLC0415 - one helper needs it

    return base64.b64encode(text.encode()).decode()


def test_a_retired_key_expires_on_the_proxy_and_loses_its_budget_period(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    """Old and new keys together once spent more than maxBudget per period, and the old key
    stayed valid for 999 months: the grace period is capped, the old key expires on the
    proxy, and LiteLLM never resets its spend again."""
    policies = tenants(proxy, minRotationInterval="1s")
    cluster = make_cluster(
        policies=policies, budgetDuration="1h", rotation={"trigger": 0, "gracePeriod": "1h"}
    )
    cluster.converge()
    old_token = token(cluster)
    assert cluster.xr is not None
    time.sleep(1.1)  # minRotationInterval: a second after the key's Request was made
    cluster.xr["spec"]["rotation"]["trigger"] = 1
    for _ in range(8):
        cluster.converge(rounds=4)
        if token(cluster) != old_token:
            break
    assert token(cluster) != old_token, (cluster.condition(), cluster.xr.get("status"))
    cluster.converge()
    old = key_info(proxy, old_token)
    assert old["key_alias"].endswith(old_token[:8])
    assert old["budget_duration"] is None
    assert old["budget_reset_at"] is None
    assert old["expires"] is not None
    refused = copy.deepcopy(cluster.xr)
    refused["spec"]["rotation"]["gracePeriod"] = "999mo"
    cluster.apply_xr(refused)
    cluster.compose()
    assert cluster.last is not None
    (fatal,) = [r.message for r in cluster.last.results if "gracePeriod" in r.message]
    assert "keys.maxGracePeriod" in fatal


def test_a_platform_user_is_never_taken_over_by_a_colliding_id(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    """Namespace `john` with userID `doe@corp.example` spells the platform's
    `john.doe@corp.example`: the proxy admin keeps its role, e-mail and budget, and
    deleting the tenant's User deletes nothing."""
    suffix = uuid.uuid4().hex[:6]
    platform_id = f"john.doe-{suffix}@corp.example"
    with platform_admin(proxy, platform_id) as admin_key:
        tenant = make_cluster(
            "accounts/user.yaml",
            policies=tenants(proxy, "john"),
            namespace="john",
            userID=f"doe-{suffix}@corp.example",
            userEmail=f"mallory-{suffix}@example.com",
            maxBudget="0.01",
            autoCreateKey=False,
            keyAlias=None,
        )
        tenant.converge()
        status, reason, message = tenant.condition()
        assert (status, reason) == ("False", "IDConflict"), message
        with proxy.admin() as admin:
            live = admin.get("/user/info", params={"user_id": platform_id}).json()["user_info"]
        assert live["user_role"] == "proxy_admin"
        assert live["user_email"] is None
        assert live["max_budget"] is None
        tenant.delete_xr()
        tenant.converge()
        assert not tenant.deleting
        assert chat(proxy, admin_key) == 200
        with proxy.admin() as admin:
            assert admin.get("/user/info", params={"user_id": platform_id}).status_code == 200


def test_a_platform_team_is_never_taken_over_by_a_colliding_id(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    platform_id = f"john.research-{suffix}"
    with proxy.admin() as admin:
        made = admin.post(
            "/team/new", json={"team_id": platform_id, "team_alias": "platform", "max_budget": 1}
        )
        assert made.status_code == 200, made.text
    try:
        tenant = make_cluster(
            "accounts/team.yaml",
            policies=tenants(proxy, "john"),
            namespace="john",
            teamID=f"research-{suffix}",
            maxBudget="1000",
        )
        tenant.converge()
        assert tenant.condition()[:2] == ("False", "IDConflict")
        with proxy.admin() as admin:
            live = admin.get("/team/info", params={"team_id": platform_id}).json()["team_info"]
        assert live["max_budget"] == 1.0
        assert live["team_alias"] == "platform"
        tenant.delete_xr()
        tenant.converge()
        with proxy.admin() as admin:
            assert admin.get("/team/info", params={"team_id": platform_id}).status_code == 200
    finally:
        with proxy.admin() as admin:
            admin.post("/team/delete", json={"team_ids": [platform_id]})


def test_a_users_default_role_cannot_mint_keys(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster(
        "accounts/user.yaml",
        autoCreateKey=False,
        keyAlias=None,
        userEmail=f"viewer-{uuid.uuid4().hex[:6]}@example.com",
    )
    cluster.converge()
    assert cluster.condition()[:2] == ("True", "Available"), cluster.condition()
    assert cluster.xr is not None
    user_id = f"team-a.{cluster.xr['metadata']['name']}"
    with proxy.admin() as admin:
        info = admin.get("/user/info", params={"user_id": user_id}).json()["user_info"]
        assert info["user_role"] == "internal_user_viewer"
        assert info["metadata"]["auth.litellm.ai/user"] == cluster.xr["metadata"]["name"]
        key = admin.post("/key/generate", json={"user_id": user_id}).json()["key"]
    assert chat(proxy, key) == 200
    with proxy.admin() as admin:
        admin.headers["Authorization"] = f"Bearer {key}"
        minted = admin.post("/key/generate", json={"key_alias": f"minted-{uuid.uuid4().hex[:6]}"})
    assert minted.status_code == 401


def test_a_squatted_alias_with_forged_provenance_is_not_taken_for_a_reinstall(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    """A user whose role may mint (internal_user, granted explicitly) squats team-b's alias
    with team-b's provenance and a spend of $9.99: LiteLLM records who made it, so team-b
    neither deletes it as its own nor starts at $9.99; with the platform's opt-in it
    replaces it, without its spend."""
    suffix = uuid.uuid4().hex[:6]
    minter = f"team-a.minter-{suffix}"
    alias = f"team-b-service-{suffix}"
    with proxy.admin() as admin:
        admin.post(
            "/user/new",
            json={"user_id": minter, "user_role": "internal_user", "auto_create_key": False},
        )
        minter_key = admin.post("/key/generate", json={"user_id": minter}).json()["key"]
        admin.headers["Authorization"] = f"Bearer {minter_key}"
        squat = admin.post(
            "/key/generate",
            json={
                "key_alias": alias,
                "spend": 9.99,
                "metadata": {
                    "auth.litellm.ai/namespace": "team-b",
                    "auth.litellm.ai/virtualkey": "example-service",
                },
            },
        )
    assert squat.status_code == 200, squat.text
    squat_key, squat_token = squat.json()["key"], squat.json()["token"]
    assert key_info(proxy, squat_token)["created_by"] == minter != MASTER_STAMP
    try:
        b = make_cluster(policies=tenants(proxy, "team-b"), namespace="team-b", keyAlias=alias)
        assert b.xr is not None
        b.xr["metadata"]["name"] = "example-service"
        b.converge()
        assert b.condition()[1] == "AliasConflict"
        assert chat(proxy, squat_key) == 200  # never deleted as team-b's own
        opted = make_cluster(
            policies=tenants(proxy, "team-b", replaceForeignKeys=True),
            namespace="team-b",
            keyAlias=alias,
        )
        b.delete_xr()
        b.converge()
        for _ in range(4):
            opted.clock.advance(31)
            opted.converge(rounds=8)
        assert opted.condition()[:2] == ("True", "Available"), opted.condition()
        assert chat(proxy, squat_key) == 401
        assert key_info(proxy, token(opted))["spend"] < 9.99
    finally:
        with proxy.admin() as admin:
            admin.post("/key/delete", json={"keys": [squat_token]})
            admin.post("/user/delete", json={"user_ids": [minter]})
