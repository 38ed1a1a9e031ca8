"""The tenancy attacks of issue 7 that involve a proxy, end to end.

Attacks 2 and 3 run against the real LiteLLM proxy: a `proxy_admin` user and
other tenants' teams are made there, the danger is shown to be real (a key
bound to the admin user lists every key; one without it gets 403), and the
tenant's VirtualKey is refused before anything reaches the proxy. Attacks 1
and 5 need a proxy the tenant runs: a hostile one, recording what it is sent
and answering with secret placeholders, which provider-http resolves.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from benchmarks.loopback import LoopbackServer, read_body, send_json
from tests.conftest import Proxy, platform_admin
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import INSTANCE, SpendWatcher, platform_policies

pytestmark = pytest.mark.e2e

# Another tenant's Secret, which a hostile proxy names in its answers. Its
# value has no key shape, so no redaction of key-like text could hide it.
OTHER_SECRET = ("team-c", "db-credentials")
OTHER_VALUE = "correct-horse-battery-staple"
PLACEHOLDER = f"{{{{ {OTHER_SECRET[1]}:{OTHER_SECRET[0]}:password }}}}"


def fatal(cluster: Cluster) -> str:
    assert cluster.last is not None
    messages = [r.message for r in cluster.last.results if r.severity == fnv1.SEVERITY_FATAL]
    assert len(messages) == 1, [r.message for r in cluster.last.results]
    return str(messages[0])


def keys_with_alias(proxy: Proxy, alias: str) -> list[dict[str, Any]]:
    with proxy.admin() as admin:
        found = admin.get("/key/list", params={"key_alias": alias, "return_full_object": "true"})
    found.raise_for_status()
    keys: list[dict[str, Any]] = found.json()["keys"]
    return keys


@pytest.fixture
def admin_user(proxy: Proxy, unique: str) -> Iterator[str]:
    user = f"admin-{unique}"
    with platform_admin(proxy, user):
        yield user


@pytest.fixture
def teams(proxy: Proxy, unique: str) -> Iterator[dict[str, str]]:
    made: dict[str, str] = {}
    with proxy.admin() as admin:
        for tenant in ("team-a", "team-b"):
            answer = admin.post("/team/new", json={"team_alias": f"{tenant}-{unique}"})
            assert answer.status_code == 200, answer.text
            made[tenant] = answer.json()["team_id"]
        yield made
        admin.post("/team/delete", json={"team_ids": list(made.values())})


def test_a_proxy_admin_user_is_real_power_and_a_tenant_cannot_bind_to_it(
    proxy: Proxy, make_cluster: Callable[..., Cluster], admin_user: str, unique: str
) -> None:
    # The danger: a key bound to the admin user lists every key; a plain one gets 403.
    with proxy.admin() as admin:
        bound = admin.post(
            "/key/generate", json={"user_id": admin_user, "key_alias": f"probe-{unique}"}
        ).json()["key"]
        plain = admin.post("/key/generate", json={"key_alias": f"plain-{unique}"}).json()["key"]
        try:
            for key, code in ((bound, 200), (plain, 403)):
                listed = httpx.get(
                    f"{proxy.url}/key/list", headers={"Authorization": f"Bearer {key}"}, timeout=30
                )
                assert listed.status_code == code, listed.text
        finally:
            admin.post("/key/delete", json={"key_aliases": [f"probe-{unique}", f"plain-{unique}"]})
    # The tenant asks for it: refused, nothing composed, no key on the proxy.
    cluster = make_cluster(userID=admin_user)
    cluster.converge()
    message = fatal(cluster)
    assert "spec.userID" in message
    assert f"LiteLLM user '{admin_user}' is not allowed in namespace 'team-a'" in message
    assert "rule 'team-a' of TenancyPolicy 'litellm-example'" in message
    assert cluster.composed == {}
    assert cluster.xr is not None
    assert keys_with_alias(proxy, cluster.xr["spec"]["keyAlias"]) == []


def test_another_tenants_team_is_refused_and_the_bound_team_is_set(
    proxy: Proxy, make_cluster: Callable[..., Cluster], teams: dict[str, str]
) -> None:
    policies = platform_policies(proxy.url)
    (team_a_rule,) = [r for r in policies[0]["spec"]["rules"] if r["name"] == "team-a"]
    team_a_rule["teams"] = {"bind": teams["team-a"]}
    stolen = make_cluster(policies=policies, teamID=teams["team-b"])
    stolen.converge()
    message = fatal(stolen)
    assert f"LiteLLM team '{teams['team-b']}' is not allowed in namespace 'team-a'" in message
    assert stolen.xr is not None
    assert keys_with_alias(proxy, stolen.xr["spec"]["keyAlias"]) == []
    # Naming no team gets the bound one, on the real proxy.
    bound = make_cluster(policies=policies)
    bound.converge()
    assert bound.condition()[:2] == ("True", "Available"), bound.condition()
    assert bound.xr is not None
    (key,) = keys_with_alias(proxy, bound.xr["spec"]["keyAlias"])
    assert key["team_id"] == teams["team-a"]


def test_an_instance_granted_to_another_namespace_is_refused(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    policies = platform_policies(proxy.url)
    rules = policies[0]["spec"]["rules"]
    rules[:] = [{**r, "namespaces": {"names": ["team-b"]}} for r in rules if r["name"] == "team-a"]
    cluster = make_cluster(policies=policies)
    cluster.converge()
    assert "LiteLLM instance litellm/litellm-example is not granted" in fatal(cluster)
    assert cluster.composed == {}


class HostileProxy:
    """A tenant-run 'LiteLLM' that records what it is sent and answers with placeholders."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []  # (method, path, Authorization)
        self.lock = threading.Lock()
        self.server = LoopbackServer(self._handler())

    def __enter__(self) -> HostileProxy:
        self.server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def answer(self, path: str) -> tuple[int, Any]:
        if path.startswith("/key/info"):
            # Every field a check reads, shaped to break a check that is not total.
            info = {
                "models": PLACEHOLDER,
                "metadata": PLACEHOLDER,
                "litellm_budget_table": PLACEHOLDER,
                "max_budget": PLACEHOLDER,
                "status": PLACEHOLDER,
            }
            return 200, {"key": PLACEHOLDER, "info": info}
        if path.startswith("/key/generate"):
            return 400, {"error": {"message": f"alias taken: {PLACEHOLDER}"}}
        return 500, {"detail": PLACEHOLDER}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                read_body(self)
                with hostile.lock:
                    hostile.seen.append(
                        (self.command, self.path, self.headers.get("Authorization", ""))
                    )
                send_json(self, *hostile.answer(self.path))

            do_GET = do_POST = _serve  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler


@pytest.fixture
def hostile() -> Iterator[HostileProxy]:
    with HostileProxy() as server:
        yield server


def test_the_master_key_never_goes_to_a_tenant_url(
    proxy: Proxy,
    make_cluster: Callable[..., Cluster],
    watcher: SpendWatcher,
    hostile: HostileProxy,
) -> None:
    policies = platform_policies(proxy.url)
    own = {"name": "team-b-own-proxy", "namespaces": {"names": ["team-b"]}}
    own["tenantProxies"] = {"allow": True, "allowLoopback": True}
    policies[0]["spec"]["rules"][1] = own
    connection = {
        "url": hostile.url,
        "masterKeySecretRef": {"name": INSTANCE[1], "namespace": INSTANCE[0], "key": "masterkey"},
    }
    for namespace in ("team-a", "team-b"):  # without and with tenant proxies allowed
        cluster = make_cluster(policies=policies, namespace=namespace, connectionRef=connection)
        cluster.converge()
        message = fatal(cluster)
        assert "spec.connectionRef" in message
        assert cluster.composed == {}
        watcher.apiserver.add_policy(policies[0])
        watcher.watch(cluster)
    watcher.poller.cycle()
    assert hostile.seen == []


def test_a_tenant_proxy_cannot_read_other_secrets_through_provider_http(
    proxy: Proxy, make_cluster: Callable[..., Cluster], hostile: HostileProxy
) -> None:
    policies = platform_policies(proxy.url)
    policies[0]["spec"]["rules"][1]["tenantProxies"] = {"allow": True, "allowLoopback": True}
    tenant_secret = ("team-b", "team-b-litellm")
    cluster = make_cluster(
        "virtualkey/virtualkey-explicit.yaml",
        policies=policies,
        secrets={
            tenant_secret: {"masterkey": "sk-the-tenants-own-master-key"},
            OTHER_SECRET: {"password": OTHER_VALUE},
        },
        connectionRef={"url": hostile.url, "masterKeySecretRef": {"name": tenant_secret[1]}},
    )
    cluster.converge()
    # Create the key (refused), then observe it: every answer carries the placeholder.
    cluster.clock.advance(31)
    cluster.converge()
    assert hostile.seen, "the tenant's proxy was called"
    assert all(auth == "Bearer sk-the-tenants-own-master-key" for _, _, auth in hostile.seen)
    assert cluster.xr is not None
    tenant_visible = json.dumps(
        {
            "status": cluster.xr.get("status"),
            "conditions": [(c.reason, c.message) for c in cluster.last.conditions]
            if cluster.last
            else [],
            "results": [r.message for r in cluster.last.results] if cluster.last else [],
            "request": copy.deepcopy(cluster.request().get("status")),
        }
    )
    assert OTHER_VALUE not in tenant_visible
    assert proxy.master_key not in tenant_visible
    assert cluster.condition()[0] == "False"
