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


def test_route_missing_is_told_from_another_404() -> None:
    with pytest.raises(LiteLLMNotFound) as missing:
        _answer(404, {"detail": "Not Found"}).list_keys(1)
    assert missing.value.route_missing
    with pytest.raises(LiteLLMNotFound) as other:
        _answer(404, {"error": {"message": "not found", "type": "not_found_error"}}).list_keys(1)
    assert not other.value.route_missing


def test_one_alias_is_asked_for_exactly() -> None:
    asked: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        return httpx.Response(200, json={"keys": [], "total_pages": 0})

    _client(handler).list_keys(1, alias="team-a/svc@x.y")
    assert asked[0].params["key_alias"] == "team-a/svc@x.y"
    assert asked[0].params["return_full_object"] == "true"


def test_bulk_stops_paging_once_every_key_is_found() -> None:
    with FakeLiteLLM(master_key="sk-m") as fake:
        for i in range(500):
            fake.add(f"{i:064x}", f"k{i}", owner=("team-a", f"vk{i}"))
        client = LiteLLMClient(fake.url, "sk-m")
        wanted = [Wanted(f"k{i}", ("team-a", f"vk{i}")) for i in range(150)]
        records = KeyFetcher(client).fetch(wanted)
        assert all(records)
        assert client.requests == 2  # oldest first: the 150 are on pages 1 and 2
        client.close()


def test_missing_aliases_are_confirmed_one_by_one_up_to_the_cap_taking_turns() -> None:
    with FakeLiteLLM(master_key="sk-m") as fake:
        fake.add("a" * 64, "here", owner=("team-a", "here"))
        client = LiteLLMClient(fake.url, "sk-m")
        fetcher = KeyFetcher(client, max_confirmations=3)
        wanted = [Wanted("here", ("team-a", "here"))]
        wanted += [Wanted(f"gone-{i}", ("team-a", f"gone-{i}")) for i in range(5)]
        assert [r is not None for r in fetcher.fetch(wanted)] == [True] + [False] * 5
        assert client.requests == 1 + 3
        assert fake.alias_queries == ["gone-0", "gone-1", "gone-2"]
        fetcher.fetch(wanted)
        assert fake.alias_queries[3:] == ["gone-3", "gone-4", "gone-0"]
        client.close()


def test_per_key_asks_each_alias_and_matches_by_provenance() -> None:
    with FakeLiteLLM(master_key="sk-m") as fake:
        fake.add("a" * 64, "one", spend=1.0, owner=("team-a", "one"))
        fake.add("b" * 64, "two", spend=2.0, owner=("team-b", "someone-else"))
        client = LiteLLMClient(fake.url, "sk-m")
        fetcher = KeyFetcher(client, FetchMode.PER_KEY)
        one, two = fetcher.fetch(
            [Wanted("one", ("team-a", "one")), Wanted("two", ("team-a", "two"))]
        )
        assert one is not None
        assert str(one.spend) == "1.0"
        assert two is None
        assert fetcher.holders["two"].owner == ("team-b", "someone-else")
        assert fake.requests["/key/list"] == 2
        client.close()
