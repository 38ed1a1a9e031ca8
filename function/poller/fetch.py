"""Fetch the state of many keys of one proxy with few requests.

`KeyFetcher(client, mode).fetch(wanted)` -> one `KeyRecord | None` per
`Wanted` (None: LiteLLM has no live key for it), in the same order.

Modes:

- `bulk` (default): page through `GET /key/list?return_full_object=true`
  (100 per page, oldest first), matching by token, or by alias for a
  VirtualKey whose `status.tokenHash` is not written yet. It stops early
  once every wanted key is found. Keys still missing are confirmed with one
  `POST /v2/key/info` per 100 of them, because a key deleted during the
  listing shifts the later pages and may hide another. `/v2/key/info`
  answers without `token`, in database order, leaving out unknown keys, so
  its entries are matched by alias, and only where that cannot go wrong:
  an alias that two wanted keys share, or that two answers carry, matches
  nothing (those keys are read one by one with `GET /key/info`), so one
  tenant's spend is never credited to another's VirtualKey. Requests:
  ceil(keys on the proxy / 100), plus one per 100 missing keys.
  A proxy without `/key/list` (404 or 405) falls back to `/v2/key/info` for
  every key, and one without that to one `GET /key/info` per key.
- Along the way, `bulk` notes which other key holds the alias of a wanted
  key it did not find (`holders`): what the function needs to recover
  after a reinstall (README, "Rotation, provenance and recovery").
- `per-key`: one `GET /key/info` per key (the naive way, for comparison).
  It alone sees deleted keys (`status: "deleted"`); `bulk` sees them as
  missing, which gives the same reason, KeyNotFound.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace

from function.poller.litellm import (
    PAGE_SIZE,
    LiteLLMClient,
    LiteLLMNotFound,
    LiteLLMPermanentError,
    LiteLLMTemporaryError,
    LiteLLMUnauthorized,
)
from function.poller.records import KeyRecord

log = logging.getLogger(__name__)

MAX_PAGES = 1_000  # 100,000 keys a proxy; a proxy that pages on and on stops here
_MISSING_ENDPOINT = (404, 405)


class FetchMode(enum.StrEnum):
    """How keys are fetched."""

    BULK = "bulk"
    V2 = "v2"
    PER_KEY = "per-key"


@dataclass(frozen=True)
class Wanted:
    """What identifies one VirtualKey's key at LiteLLM."""

    token: str | None
    alias: str


def _unique_aliases(items: list[tuple[int, Wanted]]) -> dict[str, int]:
    """Alias -> index, for the aliases only one of `items` has."""
    counts = Counter(w.alias for _, w in items)
    return {w.alias: i for i, w in items if counts[w.alias] == 1}


def _holds_alias(record: KeyRecord, tokened: dict[str, str]) -> bool:
    """Whether `record` is another live key with the alias of a wanted key."""
    alias = record.alias
    return (
        alias is not None
        and alias in tokened
        and record.token != tokened[alias]
        and not record.deleted
    )


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class KeyFetcher:
    """Fetches keys from one proxy; remembers a fallback mode between cycles."""

    def __init__(
        self,
        client: LiteLLMClient,
        mode: FetchMode = FetchMode.BULK,
        max_pages: int = MAX_PAGES,
        deadline: float = 300.0,
    ) -> None:
        """Fetch through `client`, starting with `mode`; one fetch gets `deadline` seconds."""
        self.client = client
        self.mode = mode
        self.max_pages = max_pages
        self.deadline = deadline
        self._until = 0.0
        # Alias -> the key holding it, for wanted keys the last fetch did not
        # find (read from the bulk listing only: it costs no request).
        self.holders: dict[str, KeyRecord] = {}

    def _in_time(self, what: str) -> None:
        """Raise if this fetch has run past its deadline (a slow or endless proxy)."""
        if time.monotonic() > self._until:
            msg = f"{what}: reading the proxy took longer than {self.deadline:g} s; stopped"
            raise LiteLLMTemporaryError(msg)

    def fetch(self, wanted: list[Wanted]) -> list[KeyRecord | None]:
        """One record or None per wanted key. Raises LiteLLMError."""
        self._until = time.monotonic() + self.deadline
        self.holders = {}
        if self.mode is FetchMode.PER_KEY:
            return self._per_key(wanted)
        if self.mode is FetchMode.BULK:
            try:
                return self._bulk(wanted)
            except LiteLLMPermanentError as e:
                if isinstance(e, LiteLLMUnauthorized) or e.status not in _MISSING_ENDPOINT:
                    raise
                log.warning("%s: /key/list is missing; falling back to /v2/key/info", e)
                self.mode = FetchMode.V2
        try:
            results: list[KeyRecord | None] = [None] * len(wanted)
            self._confirm(wanted, results, [i for i, w in enumerate(wanted) if w.token])
        except LiteLLMPermanentError as e:
            if isinstance(e, LiteLLMUnauthorized) or e.status not in _MISSING_ENDPOINT:
                raise
            log.warning("%s: /v2/key/info is missing; falling back to /key/info per key", e)
            self.mode = FetchMode.PER_KEY
            return self._per_key(wanted)
        return results

    def _bulk(self, wanted: list[Wanted]) -> list[KeyRecord | None]:
        by_token = {w.token: i for i, w in enumerate(wanted) if w.token}
        # Before the function writes the token, the alias stands in, if no other key has it.
        by_alias = _unique_aliases([(i, w) for i, w in enumerate(wanted) if not w.token])
        results: list[KeyRecord | None] = [None] * len(wanted)
        tokened = {w.alias: w.token for w in wanted if w.token}
        seen: dict[str, KeyRecord] = {}
        left = len(wanted)
        for records in self._pages() if left else ():
            for record in records:
                index = by_token.get(record.token or "")
                if index is None and record.alias is not None:
                    index = by_alias.get(record.alias)
                if index is None:
                    if _holds_alias(record, tokened):
                        seen[str(record.alias)] = record
                elif results[index] is None:
                    results[index] = record
                    left -= 1
            if not left:
                break
        missing = [i for i, r in enumerate(results) if r is None and wanted[i].token]
        self.holders = {
            wanted[i].alias: seen[wanted[i].alias] for i in missing if wanted[i].alias in seen
        }
        self._confirm_listed(wanted, results, missing)
        return results

    def _confirm_listed(
        self, wanted: list[Wanted], results: list[KeyRecord | None], missing: list[int]
    ) -> None:
        if not missing:
            return
        try:
            self._confirm(wanted, results, missing)
        except LiteLLMPermanentError as e:
            # An older proxy without /v2/key/info: the listing stands.
            if isinstance(e, LiteLLMUnauthorized) or e.status not in _MISSING_ENDPOINT:
                raise

    def _pages(self) -> Iterator[list[KeyRecord]]:
        """The pages of `GET /key/list`, up to the last one (or the caller's stop)."""
        page = 1
        while True:
            if page > self.max_pages:
                msg = f"GET /key/list: more than {self.max_pages} pages; stopped"
                raise LiteLLMTemporaryError(msg)
            self._in_time("GET /key/list")
            listing = self.client.list_keys(page, PAGE_SIZE)
            yield listing.records
            if page >= listing.total_pages or not listing.records:
                return
            page += 1

    def _confirm(
        self, wanted: list[Wanted], results: list[KeyRecord | None], indexes: list[int]
    ) -> None:
        """Fill `results` at `indexes` from /v2/key/info, 100 tokens a request."""
        unsure: list[int] = []
        for batch in _chunks(indexes, PAGE_SIZE):
            self._in_time("POST /v2/key/info")
            tokens = [wanted[i].token for i in batch if wanted[i].token]
            by_alias = _unique_aliases([(i, wanted[i]) for i in batch])
            unsure.extend(i for i in batch if wanted[i].alias not in by_alias)
            answers = self.client.key_info_v2([t for t in tokens if t])
            counts = Counter(r.alias for r in answers)
            for record in answers:
                index = by_alias.get(record.alias or "")
                if index is None:
                    continue
                if counts[record.alias] > 1:
                    unsure.append(index)  # two answers claim one alias: trust neither
                    continue
                results[index] = replace(record, token=wanted[index].token)
        # What an alias cannot tell apart, the token can, one request each.
        checked = self._per_key([wanted[i] for i in unsure])
        for index, found in zip(unsure, checked, strict=True):
            results[index] = found

    def _per_key(self, wanted: list[Wanted]) -> list[KeyRecord | None]:
        results: list[KeyRecord | None] = []
        for item in wanted:
            self._in_time("GET /key/info")
            if not item.token:
                results.append(None)
                continue
            try:
                results.append(self.client.key_info(item.token))
            except LiteLLMNotFound as e:
                if e.route_missing:
                    raise
                results.append(None)
        return results
