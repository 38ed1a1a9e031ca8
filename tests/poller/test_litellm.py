"""The LiteLLM client: status codes to exceptions, shapes from the real samples."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

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
