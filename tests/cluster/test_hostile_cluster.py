"""Hostile tenants on the real control plane, acting through the role the product ships.

Each tenant is a user impersonated with `kubectl --as`, bound to
`examples/install/tenant-rbac.yaml` in its namespace, plus what a platform that binds
Crossplane's generated XRD edit roles would add: writing its objects' status.
What it tries:

- provider-http and the mask Secrets are out of its reach (the role);
- taking another tenant's alias, forging its status with that tenant's token,
  and deleting its VirtualKey: the other tenant's key keeps working;
- a userID that spells a platform user's ID, and a forged User status that a
  VirtualKey's userRef would bind to: the platform user is untouched, and no
  key is bound to it.

The same stories, and the other attacks, run against the real proxy in
tests/e2e/test_hostile_tenants_e2e.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import (
    Plane,
    condition,
    key_info,
    platform_policy,
    poll_once,
    until,
)
from tests.conftest import ACCOUNTS, INSTALL, VIRTUALKEYS, Proxy, chat, platform_admin

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]
NAMESPACES = ("team-a", "team-b", "john")
POLICY = "hostile-tenants"


def as_tenant(namespace: str) -> list[str]:
    return ["--as", f"{namespace}-dev", "--as-group", f"{namespace}-developers"]


def _binding(namespace: str, role: str) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": namespace},
        "subjects": [
            {
                "kind": "Group",
                "apiGroup": "rbac.authorization.k8s.io",
                "name": f"{namespace}-developers",
            }
        ],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
    }


@pytest.fixture(scope="module")
def tenants(platform: Plane, proxy: Proxy) -> Iterator[Plane]:
    """The shipped tenant role in each namespace, status writes on top, and a policy for them."""
    if platform.get("namespace", "john") is None:
        platform.kubectl("create", "namespace", "john")
    platform.kubectl("apply", "-f", str(INSTALL / "tenant-rbac.yaml"))
    status_writer = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "hostile-status-writer"},
        "rules": [
            {
                "apiGroups": ["auth.litellm.ai"],
                "resources": ["virtualkeys/status", "users/status", "teams/status"],
                "verbs": ["get", "update", "patch"],
            }
        ],
    }
    platform.apply(
        status_writer,
        *(_binding(ns, "litellm-keys-tenant") for ns in NAMESPACES),
        *(_binding(ns, "hostile-status-writer") for ns in NAMESPACES),
    )
    policy = platform_policy(proxy.url)
    policy["metadata"]["name"] = POLICY
    rule = policy["spec"]["rules"][0]
    rule["name"] = "other-tenants"
    rule["namespaces"] = {"names": ["team-b", "john"]}
    rule.pop("teams", None)
    # team-a may replace foreign keys holding its aliases: never another namespace's.
    opt_in = {
        "name": "team-a-replaces-foreign-keys",
        "namespaces": {"names": ["team-a"]},
        "instances": rule["instances"],
        "keys": {"replaceForeignKeys": True},
    }
    policy["spec"]["rules"] = [rule, opt_in]
    platform.apply(policy)
    yield platform
    platform.kubectl("delete", "tenancypolicy", POLICY, check=False)


def _apply_as(plane: Plane, namespace: str, obj: Obj) -> None:
    plane.kubectl(*as_tenant(namespace), "apply", "-f", "-", stdin=yaml.safe_dump(obj))


def _virtualkey(namespace: str, name: str, alias: str) -> Obj:
    xr: Obj = yaml.safe_load((VIRTUALKEYS / "virtualkey.yaml").read_text())
    xr["metadata"] = {"name": name, "namespace": namespace}
    xr["spec"]["keyAlias"] = alias
    return xr


def _ready(plane: Plane, kind: str, namespace: str, name: str) -> Obj:
    def is_ready() -> Obj | None:
        found = plane.get(kind, name, namespace)
        return found if condition(found, "Ready").get("status") == "True" else None

    found: Obj = until(is_ready, f"{kind} {namespace}/{name} to be Ready", 180)
    return found


def _reason(plane: Plane, kind: str, namespace: str, name: str, condition_type: str) -> str:
    return str(condition(plane.get(kind, name, namespace), condition_type).get("reason") or "")


def _forge(plane: Plane, namespace: str, kind: str, name: str, status: Obj) -> None:
    plane.kubectl(
        *as_tenant(namespace),
        "patch",
        kind,
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def _payloads(plane: Plane, namespace: str, xr: str) -> str:
    """The payloads of the Requests the XR `xr` composed (other tests' may linger there)."""
    found = plane.items("requests.http.m.crossplane.io", namespace, f"crossplane.io/composite={xr}")
    return json.dumps([r["spec"]["forProvider"]["payload"] for r in found])


@pytest.mark.parametrize(
    ("verb", "resource", "where", "allowed"),
    [
        ("create", "virtualkeys.auth.litellm.ai", "team-a", True),
        ("patch", "virtualkeys.auth.litellm.ai/status", "team-a", True),  # the worst case granted
        ("create", "secrets", "team-a", True),
        ("create", "requests.http.m.crossplane.io", "team-a", False),
        ("update", "requests.http.m.crossplane.io", "team-a", False),
        ("get", "requests.http.m.crossplane.io", "team-a", False),
        ("delete", "secrets", "crossplane-system", False),  # the mask Secrets
        ("get", "secrets", "litellm", False),  # the master key
        ("create", "virtualkeys.auth.litellm.ai", "team-b", False),
    ],
)
def test_the_tenant_role_reaches_no_master_key(
    tenants: Plane, verb: str, resource: str, where: str, allowed: bool
) -> None:
    done = tenants.kubectl(
        *as_tenant("team-a"), "auth", "can-i", verb, resource, "-n", where, check=False
    )
    assert (done.stdout.strip() == "yes") is allowed, (verb, resource, where, done.stdout)


def _spend(plane: Plane, namespace: str, name: str) -> str:
    found = plane.get("virtualkey", name, namespace) or {}
    return str((found.get("status") or {}).get("currentSpend") or "")


def test_a_tenant_cannot_get_another_tenants_key_deleted(
    tenants: Plane, proxy: Proxy, poller_kubeconfig: Path
) -> None:
    """Tenant A takes B's alias (with its namespace's replaceForeignKeys opt-in), writes B's
    token into every status field, and deletes its VirtualKey; meanwhile the poller runs, and
    a VirtualKey of john's carries JSON nested 2,000 deep. B's key keeps working, stays B's,
    and its spend is never A's."""
    unique = uuid.uuid4().hex[:6]
    alias = f"team-b-service-{unique}"
    _apply_as(tenants, "team-b", _virtualkey("team-b", f"b-{unique}", alias))
    b = _ready(tenants, "virtualkey", "team-b", f"b-{unique}")
    b_token = b["status"]["tokenHash"]
    b_key = tenants.secret_value("team-b", b["status"]["keySecretRef"], "key")
    assert chat(proxy, b_key) == 200
    # Tenant A takes B's alias: refused, and told the key is another namespace's.
    _apply_as(tenants, "team-a", _virtualkey("team-a", f"a-{unique}", alias))

    def refused() -> str:
        found = condition(tenants.get("virtualkey", f"a-{unique}", "team-a"), "KeyReady")
        message = str(found.get("message") or "")
        # The alias check's answer names whose key it is (first, only that it is taken).
        return message if found.get("reason") == "AliasConflict" and "namespace" in message else ""

    message = until(refused, "A's alias conflict, explained")
    assert "made for another namespace" in message
    assert b_token not in message
    deep = _virtualkey("john", f"deep-{unique}", f"deep-{unique}")
    deep["spec"]["metadata"] = {"note": '{"a":' + "[" * 2000 + "]" * 2000 + "}"}
    _apply_as(tenants, "john", deep)
    # A writes B's token into every status field it has, for a while, then deletes its key.
    forged = {
        "tokenHash": b_token,
        "aliasHolder": {"owner": "this", "tokenHash": b_token, "spend": "0"},
        "rotation": {"pending": {"tokenHash": b_token, "carriedSpend": "0"}},
        "currentSpend": "0",
    }

    def polled() -> bool:
        _forge(tenants, "team-a", "virtualkey", f"a-{unique}", forged)
        done = poll_once(poller_kubeconfig)
        assert done.returncode == 0, done.stderr  # john's VirtualKey stops nobody
        return _spend(tenants, "team-b", f"b-{unique}") not in ("", "0")

    until(polled, "the poller to report B's spend", 90)
    assert _spend(tenants, "team-a", f"a-{unique}") in ("", "0")  # never B's
    assert b_token not in _payloads(tenants, "team-a", f"a-{unique}")
    tenants.kubectl(*as_tenant("team-a"), "delete", "virtualkey", f"a-{unique}", "-n", "team-a")
    until(
        lambda: not _payloads(tenants, "team-a", f"a-{unique}").strip("[]"),
        "A's Requests to go",
        180,
    )
    assert chat(proxy, b_key) == 200
    assert key_info(proxy, b_token).get("status") != "deleted"
    again = _ready(tenants, "virtualkey", "team-b", f"b-{unique}")
    assert again["status"]["tokenHash"] == b_token
    tenants.kubectl(*as_tenant("team-b"), "delete", "virtualkey", f"b-{unique}", "-n", "team-b")
    tenants.kubectl(*as_tenant("john"), "delete", "virtualkey", f"deep-{unique}", "-n", "john")


def test_a_squat_with_forged_provenance_is_not_taken_for_anyones_own(
    tenants: Plane, proxy: Proxy
) -> None:
    """A user whose role may mint (granted explicitly) squats team-b's alias with team-b's
    provenance and $9.99 spent: LiteLLM records who made it, so team-b's VirtualKey neither
    deletes it as its own nor starts at $9.99; it says who holds the alias."""
    unique = uuid.uuid4().hex[:6]
    minter, alias = f"team-a.minter-{unique}", f"team-b-squatted-{unique}"
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
                    "auth.litellm.ai/virtualkey": f"b-{unique}",
                },
            },
        ).json()
    try:
        _apply_as(tenants, "team-b", _virtualkey("team-b", f"b-{unique}", alias))
        until(
            lambda: (
                _reason(tenants, "virtualkey", "team-b", f"b-{unique}", "KeyReady")
                == "AliasConflict"
            ),
            "team-b's alias conflict",
        )
        # The first answer is the proxy's 400; once the alias's holder has been read
        # (one more provider-http poll, slower on a loaded machine), it is named.
        until(
            lambda: (
                "made outside this function"
                in condition(tenants.get("virtualkey", f"b-{unique}", "team-b"), "KeyReady")[
                    "message"
                ]
            ),
            "the alias's holder to be named",
        )
        time.sleep(10)  # a few more reconciles: still nothing deleted
        assert _reason(tenants, "virtualkey", "team-b", f"b-{unique}", "KeyReady") == (
            "AliasConflict"
        )
        assert chat(proxy, squat["key"]) == 200
    finally:
        tenants.kubectl(
            *as_tenant("team-b"), "delete", "virtualkey", f"b-{unique}", "-n", "team-b", check=False
        )
        with proxy.admin() as admin:
            admin.post("/key/delete", json={"keys": [squat["token"]]})
            admin.post("/user/delete", json={"user_ids": [minter]})


def test_a_platform_user_is_never_taken_over_or_bound_to(tenants: Plane, proxy: Proxy) -> None:
    unique = uuid.uuid4().hex[:6]
    platform_id = f"john.doe-{unique}@corp.example"
    user: Obj = yaml.safe_load((ACCOUNTS / "user.yaml").read_text())
    user["metadata"] = {"name": f"doe-{unique}", "namespace": "john"}
    user["spec"].update(
        userID=f"doe-{unique}@corp.example",
        userEmail=f"mallory-{unique}@example.com",
        maxBudget="0.01",
        autoCreateKey=False,
    )
    user["spec"].pop("keyAlias", None)
    user["spec"].pop("teams", None)
    with platform_admin(proxy, platform_id) as admin_key:
        _apply_as(tenants, "john", user)
        until(
            lambda: _reason(tenants, "user", "john", f"doe-{unique}", "UserReady") == "IDConflict",
            "the User's IDConflict",
        )
        # The User says it exists (a forged status); a key's userRef still binds to nothing.
        _forge(tenants, "john", "user", f"doe-{unique}", {"userID": platform_id})
        key = _virtualkey("john", f"k-{unique}", f"john-key-{unique}")
        key["spec"]["userRef"] = {"name": f"doe-{unique}"}
        _apply_as(tenants, "john", key)

        def refused() -> str:
            found = condition(tenants.get("virtualkey", f"k-{unique}", "john"), "Synced")
            return str(found.get("message") or "") if found.get("status") == "False" else ""

        assert "spec.userRef" in until(refused, "the key's refusal")
        with proxy.admin() as admin:
            live = admin.get("/user/info", params={"user_id": platform_id}).json()["user_info"]
            bound = admin.get(
                "/key/list", params={"user_id": platform_id, "return_full_object": "true"}
            ).json()["keys"]
        assert live["user_role"] == "proxy_admin"
        assert live["user_email"] is None
        assert live["max_budget"] is None
        assert len(bound) == 1  # the platform's own key, and no other
        for kind, name in (("virtualkey", f"k-{unique}"), ("user", f"doe-{unique}")):
            tenants.kubectl(*as_tenant("john"), "delete", kind, name, "-n", "john")
        until(lambda: tenants.get("user", f"doe-{unique}", "john") is None, "the User to go", 180)
        time.sleep(5)
        assert chat(proxy, admin_key) == 200
        with proxy.admin() as admin:
            assert admin.get("/user/info", params={"user_id": platform_id}).status_code == 200


def test_the_mask_secret_lives_where_the_tenant_cannot_delete_it(
    tenants: Plane, proxy: Proxy
) -> None:
    """provider-http masks the key /key/generate echoes with a Secret in crossplane-system, which
    the tenant cannot delete; deleting a VirtualKey right after CREATE still deletes the key."""
    unique = uuid.uuid4().hex[:6]
    _apply_as(tenants, "team-a", _virtualkey("team-a", f"m-{unique}", f"mask-{unique}"))
    xr = _ready(tenants, "virtualkey", "team-a", f"m-{unique}")
    (request,) = [
        r
        for r in tenants.items("requests.http.m.crossplane.io", "team-a")
        if r["metadata"]["labels"].get("crossplane.io/composite") == f"m-{unique}"
    ]
    ref = request["spec"]["forProvider"]["secretInjectionConfigs"][0]["secretRef"]
    assert ref["namespace"] == "crossplane-system"
    assert tenants.get("secret", ref["name"], "crossplane-system") is not None
    token = xr["status"]["tokenHash"]
    key = tenants.secret_value("team-a", xr["status"]["keySecretRef"], "key")
    tenants.kubectl(*as_tenant("team-a"), "delete", "virtualkey", f"m-{unique}", "-n", "team-a")
    until(lambda: key_info(proxy, token).get("status") == "deleted", "REMOVE", 180)
    assert chat(proxy, key) == 401
