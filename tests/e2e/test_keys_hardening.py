"""Keys under faults (issue 9, items 1 and 2), with the provider-http executor and the real proxy.

The same two stories run on the real control plane in tests/cluster/.

1. Deleting a VirtualKey while the proxy refuses the master key: the deletion
   stays pending (the Request keeps its finalizer) and the key keeps existing,
   managed; once the master key is right again, REMOVE deletes it. Before, a
   failed REMOVE made provider-http take the key for "not created" and drop
   the Request, leaving a live key that nothing managed.
2. A key an admin deletes on the proxy is never created again with the same
   value: the function issues a new key, with a Warning.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Proxy, chat
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import INSTANCE

pytestmark = pytest.mark.e2e


def status_on_proxy(proxy: Proxy, token: str) -> str | None:
    with proxy.admin() as admin:
        info = admin.get("/key/info", params={"key": token}).json().get("info") or {}
    status = info.get("status")
    return status if isinstance(status, str) else None


def test_delete_with_a_wrong_master_key_waits_and_then_deletes(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster()
    cluster.converge()
    key, token = cluster.key(), cluster.xr["status"]["tokenHash"]  # type: ignore[index]
    cluster.secrets[INSTANCE]["masterkey"] = "sk-wrong-master-key-for-this-test"
    cluster.delete_xr()
    cluster.clock.advance(31)
    cluster.converge(rounds=4)
    # Still being deleted: the finalizer holds, the key is there and managed.
    assert cluster.deleting, "the Request must wait until REMOVE succeeds"
    assert status_on_proxy(proxy, token) != "deleted"
    assert chat(proxy, key) == 200
    cluster.secrets[INSTANCE]["masterkey"] = proxy.master_key
    cluster.converge()
    assert not cluster.deleting
    assert status_on_proxy(proxy, token) == "deleted"
    assert chat(proxy, key) == 401


def test_a_revoked_key_never_comes_back(proxy: Proxy, make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    cluster.converge()
    old_key, old_token = cluster.key(), cluster.xr["status"]["tokenHash"]  # type: ignore[index]
    assert cluster.condition()[:2] == ("True", "Available")
    with proxy.admin() as admin:  # an admin revokes it on the proxy
        admin.post("/key/delete", json={"keys": [old_token]}).raise_for_status()
    cluster.clock.advance(31)
    cluster.converge()
    new_key = cluster.key()
    assert new_key != old_key
    assert cluster.xr["status"]["tokenHash"] != old_token  # type: ignore[index]
    assert cluster.condition()[:2] == ("True", "Available"), cluster.condition()
    assert chat(proxy, old_key) == 401  # not recreated from the Secret
    assert chat(proxy, new_key) == 200
    assert status_on_proxy(proxy, old_token) == "deleted"


def test_the_replacing_run_warns(proxy: Proxy, make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    cluster.converge()
    token = cluster.xr["status"]["tokenHash"]  # type: ignore[index]
    with proxy.admin() as admin:
        admin.post("/key/delete", json={"keys": [token]}).raise_for_status()
    cluster.clock.advance(31)
    cluster.provider()  # Observe: gone; CREATE now only reads the key, which answers deleted
    rsp = cluster.compose()
    assert any("revoked" in r.message for r in rsp.results), [r.message for r in rsp.results]


def test_a_key_the_tenant_chose_is_deleted(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    # The tenant rewrites the key Secret after the function wrote it and before
    # provider-http's CREATE reads it (issue 9, item 3).
    cluster = make_cluster()
    cluster.compose()
    chosen = "sk-" + "TenantChoseThisKey" + cluster.xr["metadata"]["name"][-12:].replace("-", "x")  # type: ignore[index]
    chosen = (chosen + "0123456789abcdefghijklmnopqrstuvwxyz")[:46]
    secret = (cluster.namespace, cluster.xr["status"]["keySecretRef"])  # type: ignore[index]
    cluster.secrets[secret]["key"] = chosen
    cluster.provider()  # CREATE sends the tenant's key
    assert chat(proxy, chosen) == 200  # the untracked key exists...
    cluster.clock.advance(31)
    cluster.converge(rounds=8)
    cluster.clock.advance(31)
    cluster.converge(rounds=8)
    assert chat(proxy, chosen) == 401  # ...and is deleted
    assert cluster.condition()[:2] == ("True", "Available"), cluster.condition()
    assert cluster.key() != chosen
    assert chat(proxy, cluster.key()) == 200
