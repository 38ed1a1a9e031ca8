"""The LiteLLM client: status codes to exceptions, shapes from the real samples."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.fetch import FetchMode, KeyFetcher, Wanted
from function.poller.litellm import (
    LiteLLMClient,
    LiteLLMNotFound,
    LiteLLMPermanentError,
    LiteLLMTemporaryError,
    LiteLLMUnauthorized,
)
from tests.poller.samples import sample


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> LiteLLMClient:
    return LiteLLMClient("http://proxy", "sk-master-test", transport=httpx.MockTransport(handler))


def _answer(status: int, body: object = None, content: bytes | None = None) -> LiteLLMClient:
    if content is not None:
        return _client(lambda _: httpx.Response(status, content=content))
    return _client(lambda _: httpx.Response(status, json=body))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, LiteLLMTemporaryError),
        (503, LiteLLMTemporaryError),
        (429, LiteLLMTemporaryError),
        (401, LiteLLMUnauthorized),
        (403, LiteLLMUnauthorized),
        (404, LiteLLMNotFound),
        (400, LiteLLMPermanentError),
        (422, LiteLLMPermanentError),
    ],
)
def test_status_codes_map_to_exceptions(status: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        _answer(status, {"error": {"message": "x", "type": "y"}}).list_keys(1)


def test_transport_errors_and_garbage_are_temporary() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        message = "refused"
        raise httpx.ConnectError(message, request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        message = "slow"
        raise httpx.ReadTimeout(message, request=request)

    for client in (
        _client(refuse),
        _client(slow),
        _answer(200, content=b"{not json"),
        _answer(200, {"unexpected": True}),
        _answer(200, {"keys": [{"spend": "lots"}], "total_pages": 1}),
        _answer(200, {"keys": ["a" * 64], "total_pages": 1}),  # hashes only: no full objects
    ):
        with pytest.raises(LiteLLMTemporaryError):
            client.list_keys(1)


def test_real_shapes_from_the_samples() -> None:
    page = _answer(200, sample("09-key-list-paged.json")["body"]).list_keys(1)
    assert page.total_pages == 1
    assert {r.alias for r in page.records} == {"e2e-second-2e0bad", "e2e-main-2e0bad"}
    infos = _answer(200, sample("12-v2-key-info-by-hash-reversed.json")["body"]).key_info_v2(["x"])
    assert [r.token for r in infos] == [None, None]
    info = _answer(200, sample("17-key-info-after-delete.json")["body"]).key_info("t" * 64)
    assert (info.token, info.deleted) == ("t" * 64, True)


def test_route_missing_is_told_from_key_not_found() -> None:
    with pytest.raises(LiteLLMNotFound) as missing:
        _answer(404, {"detail": "Not Found"}).key_info("t")
    assert missing.value.route_missing
    with pytest.raises(LiteLLMNotFound) as unknown:
        _answer(
            404, {"error": {"message": "Key not found in database", "type": "not_found_error"}}
        ).key_info("t")
    assert not unknown.value.route_missing


def test_v2_answers_are_matched_by_alias_whatever_their_order() -> None:
    body = sample("12-v2-key-info-by-hash-reversed.json")["body"]
    fetcher = KeyFetcher(_answer(200, body), FetchMode.V2)
    wanted = [
        Wanted("a" * 64, "e2e-second-2e0bad"),
        Wanted("b" * 64, "e2e-main-2e0bad"),
        Wanted("c" * 64, "gone"),
    ]
    first, second, gone = fetcher.fetch(wanted)
    assert first is not None
    assert second is not None
    assert (first.alias, first.token) == ("e2e-second-2e0bad", "a" * 64)
    assert (second.alias, str(second.spend)) == ("e2e-main-2e0bad", "0.0048")
    assert gone is None


def test_fallbacks_for_proxies_without_bulk_endpoints() -> None:
    with FakeLiteLLM(master_key="sk-m") as fake:
        fake.add("a" * 64, "one", spend=1.0)
        fake.add("b" * 64, "two", spend=2.0)
        fake.missing = {"/key/list"}
        client = LiteLLMClient(fake.url, "sk-m")
        fetcher = KeyFetcher(client)
        wanted = [Wanted("a" * 64, "one"), Wanted("b" * 64, "two")]
        assert [r.alias if r else None for r in fetcher.fetch(wanted)] == ["one", "two"]
        assert fetcher.mode is FetchMode.V2
        fake.missing = {"/key/list", "/v2/key/info"}
        assert [r.alias if r else None for r in fetcher.fetch(wanted)] == ["one", "two"]
        assert str(fetcher.mode) == "per-key"
        assert fake.requests["/key/info"] == 2
        client.close()


def test_bulk_stops_paging_once_every_key_is_found() -> None:
    with FakeLiteLLM(master_key="sk-m") as fake:
        for i in range(500):
            fake.add(f"{i:064x}", f"k{i}")
        client = LiteLLMClient(fake.url, "sk-m")
        records = KeyFetcher(client).fetch([Wanted(f"{i:064x}", f"k{i}") for i in range(150)])
        assert all(records)
        assert client.requests == 2  # oldest first: the 150 are on pages 1 and 2
        client.close()
