"""Hostile or broken proxies and tenant input: one bad key or proxy never stops the others.

Each case here crashed or stalled a whole cycle before (issue 9, items 5-7):
a nested-JSON answer, money past Decimal's range, a time past year 9999 in UTC,
a proxy dripping one byte at a time, a huge answer, pages without end, a
repeating continue token from the API server, and v2 answers matched by an
alias two VirtualKeys share. The proxy is a raw socket server, so the bytes on
the wire are exactly the hostile ones.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller import state
from function.poller.fetch import FetchMode, KeyFetcher, Wanted
from function.poller.kube import KubeCluster
from function.poller.kubeapi import KubeTemporaryError
from function.poller.litellm import LiteLLMClient, LiteLLMTemporaryError
from function.tenancy import decide as tenancy
from tests.poller.conftest import (
    MASTER_NAMESPACE,
    MASTER_SECRET,
    RawProxy,
    Writer,
    answer,
    make_poller,
    new_raw_key,
    token_of,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer, Key
from tests.poller.samples import sample


def listed(
    token: str, alias: str, owner: tuple[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    """A /key/list entry as LiteLLM 1.108.7 gives it, with some fields replaced.

    Made by the master key, with the provenance naming VirtualKey `owner`
    (default: team-a's VirtualKey named as the alias).
    """
    entry: dict[str, Any] = dict(sample("08-key-list-full.json")["body"]["keys"][1])
    namespace, name = owner or ("team-a", alias)
    entry.update(
        {
            "token": token,
            "key_alias": alias,
            "spend": 0.5,
            "expires": None,
            "created_by": "default_user_id",
            "updated_by": "default_user_id",
            "metadata": {
                "auth.litellm.ai/namespace": namespace,
                "auth.litellm.ai/virtualkey": name,
            },
            **fields,
        }
    )
    return entry


def listing(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(entries), "total_pages": 1, "current_page": 1}).encode()


def _status(apiserver: FakeAPIServer, key: Key) -> dict[str, Any]:
    return apiserver.status(key)


def _spend_synced(apiserver: FakeAPIServer, key: Key) -> dict[str, Any]:
    conditions = _status(apiserver, key).get("conditions") or []
    return next((c for c in conditions if c["type"] == "SpendSynced"), {})


def _reason(apiserver: FakeAPIServer, key: Key) -> str:
    return str(_spend_synced(apiserver, key).get("reason", ""))


def _seed(apiserver: FakeAPIServer, master_key: str) -> None:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": master_key})


# --- item 5: crashes ---------------------------------------------------------------------


DEEP = b'{"keys": [' + b'{"metadata": ' * 100_000 + b"1" + b"}" * 100_000 + b'], "total_pages": 1}'


@pytest.mark.parametrize(
    ("case", "fields"),
    [
        ("spend of 1e300", {"spend": 1e300}),
        ("max budget of -1e300", {"max_budget": -1e300}),
        ("an expiry past year 9999 in UTC", {"expires": "9999-12-31T23:59:59-05:00"}),
        ("a reset time that is no time", {"budget_reset_at": "tomorrow"}),
        ("blocked as a string", {"blocked": "yes"}),
    ],
)
def test_one_hostile_key_stays_with_its_virtualkey(
    apiserver: FakeAPIServer,
    cluster: KubeCluster,
    raw: Callable[[Writer], RawProxy],
    case: str,
    fields: dict[str, Any],
) -> None:
    bad, good = token_of(new_raw_key()), token_of(new_raw_key())
    proxy = raw(answer(listing(listed(bad, "bad", **fields), listed(good, "good"))))
    _seed(apiserver, "sk-master")
    bad_key = apiserver.add("virtualkeys", virtualkey("bad", proxy.url, token=bad))
    good_key = apiserver.add("virtualkeys", virtualkey("good", proxy.url, token=good))
    report = make_poller(cluster).cycle()
    assert report.unavailable == [], case
    assert _reason(apiserver, good_key) == "Active"
    assert _status(apiserver, good_key)["currentSpend"] == "0.5"
    assert _reason(apiserver, bad_key) == "LiteLLMAnswerUnreadable"
    assert "currentSpend" not in _status(apiserver, bad_key)  # nothing made up


def test_a_nested_json_answer_stays_with_its_proxy(
    apiserver: FakeAPIServer,
    cluster: KubeCluster,
    raw: Callable[[Writer], RawProxy],
    litellm: FakeLiteLLM,
) -> None:
    hostile = raw(answer(DEEP))
    _seed(apiserver, litellm.master_key)
    healthy_token = token_of(new_raw_key())
    litellm.add(healthy_token, "healthy", spend=1.25, owner=("team-a", "healthy"))
    hostile_key = apiserver.add("virtualkeys", virtualkey("deep", hostile.url, token="a" * 64))
    healthy_key = apiserver.add(
        "virtualkeys", virtualkey("healthy", litellm.url, token=healthy_token)
    )
    report = make_poller(cluster).cycle()
    assert len(report.unavailable) == 1
    assert _reason(apiserver, hostile_key) == "LiteLLMUnavailable"
    # Decoded with everything 64 levels down dropped: no key object is left whole.
    assert "unexpected answer" in _spend_synced(apiserver, hostile_key)["message"]
    assert _status(apiserver, healthy_key)["currentSpend"] == "1.25"


def test_one_keys_deeply_nested_metadata_hides_no_other_key(
    apiserver: FakeAPIServer, cluster: KubeCluster, raw: Callable[[Writer], RawProxy]
) -> None:
    # A user allowed to call /key/generate can nest a key's metadata thousands deep;
    # Python's json gives up past about a thousand levels, and with it the whole page.
    deep, good = token_of(new_raw_key()), token_of(new_raw_key())
    hostile = json.dumps(listed(deep, "deep")).replace(
        '"metadata": {', '"metadata": {"x": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + ", ", 1
    )
    body = '{"keys": [' + hostile + ", " + json.dumps(listed(good, "good")) + '], "total_pages": 1}'
    proxy = raw(answer(body.encode()))
    _seed(apiserver, "sk-master")
    deep_key = apiserver.add("virtualkeys", virtualkey("deep", proxy.url))
    good_key = apiserver.add("virtualkeys", virtualkey("good", proxy.url))
    report = make_poller(cluster).cycle()
    assert report.unavailable == []
    assert _status(apiserver, good_key)["currentSpend"] == "0.5"
    # The provenance sits beside the deep part, so the hostile key is still its own.
    assert _status(apiserver, deep_key)["currentSpend"] == "0.5"


def test_a_bug_in_one_instance_stays_there(
    apiserver: FakeAPIServer,
    cluster: KubeCluster,
    raw: Callable[[Writer], RawProxy],
    litellm: FakeLiteLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = raw(answer(listing()))
    _seed(apiserver, litellm.master_key)
    token = token_of(new_raw_key())
    litellm.add(token, "healthy", spend=2, owner=("team-a", "healthy"))
    broken_key = apiserver.add("virtualkeys", virtualkey("broken", proxy.url, token="b" * 64))
    healthy_key = apiserver.add("virtualkeys", virtualkey("healthy", litellm.url, token=token))
    real_fetch = KeyFetcher.fetch

    def fetch(self: KeyFetcher, wanted: list[Wanted], deadline: Any = None) -> Any:
        if self.client is not None and proxy.url in str(self.client._client.base_url):
            raise ZeroDivisionError
        return real_fetch(self, wanted, deadline)

    monkeypatch.setattr(KeyFetcher, "fetch", fetch)
    make_poller(cluster).cycle()
    message = _spend_synced(apiserver, broken_key)["message"]
    assert "an internal error (ZeroDivisionError)" in message
    assert _status(apiserver, healthy_key)["currentSpend"] == "2"


# --- item 6: stalls and memory -------------------------------------------------------------


def drip(head_too: bool) -> Writer:
    """One byte every 0.3 s, of the headers too if `head_too`."""

    def write(sock: socket.socket, _: str) -> None:
        body = listing()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        if not head_too:
            sock.sendall(head)
            head = b""
        for byte in head + body:
            sock.sendall(bytes([byte]))
            time.sleep(0.3)

    return write


@pytest.mark.parametrize("head_too", [False, True], ids=["body", "headers and body"])
def test_a_dripping_proxy_is_cut_off_at_the_timeout(
    raw: Callable[[Writer], RawProxy],
    head_too: bool,
) -> None:
    proxy = raw(drip(head_too))
    client = LiteLLMClient(proxy.url, "sk-master", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(LiteLLMTemporaryError, match=r"no whole answer within 1 s"):
        client.list_keys(1)
    # Before, each read had 1 s, and the answer took 0.3 s a byte: over 10 s.
    assert time.monotonic() - started < 3
    client.close()


def huge(declare: bool) -> Writer:
    def write(sock: socket.socket, _: str) -> None:
        size = 100 * 1024 * 1024
        length = f"Content-Length: {size}\r\n" if declare else "Transfer-Encoding: chunked\r\n"
        sock.sendall(f"HTTP/1.1 200 OK\r\n{length}\r\n".encode())
        chunk = b" " * 65536
        framed = chunk if declare else f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        for _chunk in range(size // len(chunk)):
            sock.sendall(framed)

    return write


@pytest.mark.parametrize("declare", [True, False], ids=["declared", "chunked"])
def test_a_huge_answer_is_not_read(
    raw: Callable[[Writer], RawProxy],
    declare: bool,
) -> None:
    proxy = raw(huge(declare))
    client = LiteLLMClient(proxy.url, "sk-master", timeout=10.0, max_bytes=1024 * 1024)
    with pytest.raises(LiteLLMTemporaryError, match="larger than 1048576 bytes"):
        client.list_keys(1)
    client.close()


def test_endless_pages_stop_at_the_cap(raw: Callable[[Writer], RawProxy]) -> None:
    def endless(sock: socket.socket, _: str) -> None:
        body = json.dumps(
            {"keys": [listed(token_of(new_raw_key()), "other")], "total_pages": 10**9}
        ).encode()
        answer(body)(sock, "")

    proxy = raw(endless)
    client = LiteLLMClient(proxy.url, "sk-master", timeout=5.0)
    fetcher = KeyFetcher(client, FetchMode.BULK, max_pages=7)
    with pytest.raises(LiteLLMTemporaryError, match="more than 7 pages"):
        fetcher.fetch([Wanted("mine", ("team-a", "mine"))])
    assert proxy.requests == 7
    client.close()


def test_one_slow_proxy_gets_one_deadline(raw: Callable[[Writer], RawProxy]) -> None:
    def slow_page(sock: socket.socket, _: str) -> None:
        time.sleep(0.4)
        answer(json.dumps({"keys": [listed(token_of(new_raw_key()), "x")], "total_pages": 99})
               .encode())(sock, "")  # fmt: skip

    proxy = raw(slow_page)
    client = LiteLLMClient(proxy.url, "sk-master", timeout=5.0)
    fetcher = KeyFetcher(client, FetchMode.BULK, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(LiteLLMTemporaryError, match="took longer than 1 s"):
        fetcher.fetch([Wanted("mine", ("team-a", "mine"))])
    assert time.monotonic() - started < 2.5
    client.close()


def test_a_repeating_continue_token_stops_the_listing(
    apiserver: FakeAPIServer, cluster: KubeCluster
) -> None:
    apiserver.add("virtualkeys", virtualkey("svc", "http://127.0.0.1:9", token="e" * 64))
    apiserver.repeat_continue = "same-token-again"
    with pytest.raises(KubeTemporaryError, match="keeps paging"):
        cluster.list_virtualkeys()


# --- whose key it is: alias and provenance, never the status -------------------------------


@pytest.mark.parametrize(
    ("case", "fields"),
    [
        ("made by a user", {"created_by": "team-a.mallory"}),
        ("last changed by a user", {"updated_by": "team-a.mallory"}),
        ("no creator", {"created_by": None}),
        ("no provenance", {"metadata": {}}),
        ("another VirtualKey's provenance", {"metadata": {"auth.litellm.ai/namespace": "team-a",
                                                          "auth.litellm.ai/virtualkey": "other"}}),
    ],
)  # fmt: skip
def test_a_key_counts_only_with_its_alias_and_the_master_keys_stamp(
    apiserver: FakeAPIServer,
    cluster: KubeCluster,
    raw: Callable[[Writer], RawProxy],
    case: str,
    fields: dict[str, Any],
) -> None:
    token = token_of(new_raw_key())
    proxy = raw(answer(listing(listed(token, "svc", spend=4, **fields))))
    _seed(apiserver, "sk-master")
    # Even with that key's token written into its status.
    key = apiserver.add("virtualkeys", virtualkey("svc", proxy.url, token=token))
    make_poller(cluster).cycle()
    assert _reason(apiserver, key) == "KeyNotFound", case
    assert "currentSpend" not in _status(apiserver, key)
    want = "other" if "VirtualKey" in case else "unknown"
    assert _status(apiserver, key)["aliasHolder"] == {"owner": want}


# --- item 7: one alias, two tenants ---------------------------------------------------------


def test_one_alias_two_tenants_the_spend_goes_only_to_the_keys_maker(
    apiserver: FakeAPIServer, cluster: KubeCluster, litellm: FakeLiteLLM
) -> None:
    # Two VirtualKeys name one alias; the key holding it was made for tenant A's.
    _seed(apiserver, litellm.master_key)
    live = token_of(new_raw_key())
    litellm.add(live, "shared", spend=9.5, owner=("team-a", "owner"))
    owner = apiserver.add("virtualkeys", virtualkey("owner", litellm.url, alias="shared"))
    # Tenant B even writes A's token into its own status.
    other = virtualkey("other", litellm.url, alias="shared", token=live, namespace="team-b")
    other_key = apiserver.add("virtualkeys", other)
    make_poller(cluster).cycle()
    assert _status(apiserver, owner)["currentSpend"] == "9.5"
    assert _reason(apiserver, other_key) == "KeyNotFound"
    assert "currentSpend" not in _status(apiserver, other_key)
    assert _status(apiserver, other_key)["aliasHolder"] == {"owner": "other"}


# --- one object, one problem -------------------------------------------------------------


def test_an_error_with_one_virtualkey_stays_with_it(
    apiserver: FakeAPIServer,
    cluster: KubeCluster,
    litellm: FakeLiteLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _seed(apiserver, litellm.master_key)
    for name in ("vk-a", "vk-b", "vk-c", "vk-d"):
        litellm.add(token_of(new_raw_key()), name, spend=1, owner=("team-a", name))
        apiserver.add("virtualkeys", virtualkey(name, litellm.url))
    real_authorize = tenancy.authorize
    real_patch = state.status_patch

    def authorize(spec: Any, *args: Any, **kwargs: Any) -> Any:
        if spec.key_alias == "vk-b":
            raise RecursionError  # reading this one object fails, however it fails
        return real_authorize(spec, *args, **kwargs)

    def status_patch(status: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if status.get("keySecretRef") == "vk-c-litellm-key":
            raise KeyError  # so does writing this one
        return real_patch(status, *args, **kwargs)

    monkeypatch.setattr("function.poller.keys.authorize", authorize)
    monkeypatch.setattr("function.poller.keys.status_patch", status_patch)
    report = make_poller(cluster).cycle()
    assert (report.keys, report.skipped, report.writes, report.write_errors) == (3, 1, 2, 1)
    assert _status(apiserver, ("virtualkeys", "team-a", "vk-a"))["currentSpend"] == "1"
    assert _status(apiserver, ("virtualkeys", "team-a", "vk-d"))["currentSpend"] == "1"
    for name in ("vk-b", "vk-c"):
        assert "currentSpend" not in _status(apiserver, ("virtualkeys", "team-a", name))
