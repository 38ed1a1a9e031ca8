"""Mask Secrets whose Request is gone are deleted; nothing else ever is.

provider-http keeps `/key/generate`'s echo in
`function.provider_http.mask.secret_name(ns, request)` in the mask
namespace; a Request cannot own a Secret in another namespace, so the
poller collects them (`function.poller.masks`), through the
fake API server over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from function.poller import masks
from function.poller.kube import KubeCluster, api_client
from function.provider_http import mask
from tests.poller.conftest import make_poller
from tests.poller.fake_apiserver import FakeAPIServer

NS = mask.DEFAULT_NAMESPACE
LABELS = {"app.kubernetes.io/managed-by": "function-litellm-keys"}
NOW = datetime.now(UTC)
OLD = NOW - timedelta(hours=1)


@pytest.fixture
def server() -> Iterator[FakeAPIServer]:
    with FakeAPIServer() as fake:
        yield fake


@pytest.fixture
def kube(server: FakeAPIServer, tmp_path: Path) -> KubeCluster:
    return KubeCluster(api_client(server.kubeconfig(tmp_path)), timeout=5.0)


def _mask(server: FakeAPIServer, request: tuple[str, str], created: datetime = OLD) -> str:
    name = mask.secret_name(*request)
    server.add_secret(NS, name, {"key": "sk-echoed-by-generate"}, created=created)
    return name


def _left(server: FakeAPIServer) -> set[str]:
    return {name for ns, name in server.secrets if ns == NS}


def test_an_orphan_goes_a_live_ones_stays(server: FakeAPIServer, kube: KubeCluster) -> None:
    server.add_request("team-a", "svc-key", LABELS)
    live = _mask(server, ("team-a", "svc-key"))
    orphan = _mask(server, ("team-a", "deleted-key"))
    report = masks.collect(kube, NS, NOW)
    assert (report.candidates, report.orphans, report.deleted) == (2, 1, 1)
    assert _left(server) == {live}
    assert server.deleted_secrets == [(NS, orphan)]
    # Only metadata was listed, and no Secret's data was read.
    assert server.secret_list_accepts
    assert all("as=PartialObjectMetadataList" in a for a in server.secret_list_accepts)
    assert not [t for m, t in server.requests if m == "GET" and f"/secrets/{live}" in t]


def test_a_young_orphan_stays(server: FakeAPIServer, kube: KubeCluster) -> None:
    # Its Request may be being made while the lists were read.
    young = _mask(server, ("team-a", "new-key"), created=NOW - timedelta(minutes=2))
    report = masks.collect(kube, NS, NOW)
    assert (report.orphans, report.young, report.deleted) == (1, 1, 0)
    assert _left(server) == {young}
    # --mask-min-age sets how young: 0 takes it now.
    report = masks.collect(kube, NS, NOW, min_age=timedelta(0))
    assert (report.orphans, report.young, report.deleted) == (1, 0, 1)
    assert _left(server) == set()


def test_nothing_else_is_ever_touched(server: FakeAPIServer, kube: KubeCluster) -> None:
    others = {
        "crossplane-root-ca",
        "litellm-example-secrets",
        mask.PREFIX + "not-a-digest",
        mask.PREFIX + "A" * 40,  # upper-case hex is no name we make
        mask.PREFIX + "0" * 41,
    }
    for name in others:
        server.add_secret(NS, name, {"k": "v"}, created=OLD)
    elsewhere = mask.secret_name("team-a", "gone")
    server.add_secret("team-a", elsewhere, {"k": "v"}, created=OLD)
    report = masks.collect(kube, NS, NOW)
    assert (report.candidates, report.deleted) == (0, 0)
    assert _left(server) == others
    assert ("team-a", elsewhere) in server.secrets
    assert server.deleted_secrets == []


@pytest.mark.parametrize(
    "failure",
    ["secrets 500", "requests 500", "requests 403", "requests not served", "requests page 2"],
)
def test_a_failed_listing_deletes_nothing(
    server: FakeAPIServer, kube: KubeCluster, failure: str
) -> None:
    _mask(server, ("team-a", "gone"))
    for i in range(600):  # two pages of Requests
        server.add_request("team-b", f"r-{i}", LABELS)
    if failure == "secrets 500":
        server.fail("GET", f"/namespaces/{NS}/secrets", 500)
    elif failure == "requests not served":
        server.requests_served = False  # a 404 here is no "none left"
    elif failure == "requests page 2":
        real = server.handle

        def second_page_fails(
            method: str, target: str, headers: dict[str, str], body: bytes
        ) -> tuple[int, Any]:
            if "/requests" in target and "continue=" in target:
                return 500, {"kind": "Status", "message": "injected", "code": 500}
            return real(method, target, headers, body)

        server.handle = second_page_fails  # type: ignore[method-assign]
    else:
        server.fail("GET", "/requests", int(failure.split()[1]))
    report = masks.collect(kube, NS, NOW)
    assert report.failed
    assert report.deleted == 0
    assert server.deleted_secrets == []


def test_a_secret_changed_since_the_listing_stays(server: FakeAPIServer, kube: KubeCluster) -> None:
    first = _mask(server, ("team-a", "a"))
    second = _mask(server, ("team-a", "b"))
    server.fail("DELETE", f"/secrets/{min(first, second)}", 409)
    report = masks.collect(kube, NS, NOW)
    assert report.deleted == 1
    assert _left(server) == {min(first, second)}


def test_work_per_run_is_bounded(
    server: FakeAPIServer, kube: KubeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(masks, "MAX_DELETES", 2)
    for i in range(5):
        _mask(server, ("team-a", f"gone-{i}"))
    assert masks.collect(kube, NS, NOW).deleted == 2
    assert masks.collect(kube, NS, NOW).deleted == 2
    assert len(_left(server)) == 1


def test_the_poller_collects_every_interval_and_only_as_leader(
    server: FakeAPIServer, kube: KubeCluster
) -> None:
    _mask(server, ("team-a", "gone-1"))
    poller = make_poller(kube, mask_gc_interval=3600.0)
    assert poller.cycle(should_write=lambda: False).masks_deleted == 0  # a standby deletes nothing
    assert _left(server)
    assert poller.cycle().masks_deleted == 1
    _mask(server, ("team-a", "gone-2"))
    assert poller.cycle().masks_deleted == 0  # not due yet
    assert len(_left(server)) == 1
    assert make_poller(kube, mask_namespace="").cycle().masks_deleted == 0  # switched off
    assert make_poller(kube).cycle().masks_deleted == 1
