"""Fetch the keys of many VirtualKeys from one proxy with few requests.

`KeyFetcher(client, mode).fetch(wanted, deadline)` -> one `KeyRecord | None`
per `Wanted` (None: LiteLLM has no live key for it), in the same order.

**Which key is a VirtualKey's.** A key is VirtualKey (namespace, name)'s
current key only if its `key_alias` is the VirtualKey's `spec.keyAlias` and
its provenance names that VirtualKey, counted only for a key the master key
made and last changed (`KeyRecord.owner`, `function.provenance.key_owner`).
Nothing in the VirtualKey's status takes part: tenants can write their
status, and a forged `tokenHash` must not fetch another tenant's key. A key
without provenance (made before provenance existed, or outside the function)
matches no VirtualKey, and one tenant's key is never credited to another's
VirtualKey, since no two VirtualKeys have the same namespace and name.

Modes:

- `bulk` (default): page through `GET /key/list?return_full_object=true`
  (100 per page, oldest first), matching by alias and owner, and stop early
  once every wanted key is found. A wanted alias that no listed key holds is
  confirmed with `GET /key/list?key_alias=<alias>` (an exact match), because
  a key deleted during the listing shifts the later pages and may hide
  another: at most `max_confirmations` a fetch, taking turns between
  fetches, and only while the deadline allows. An alias some other key
  holds needs none: LiteLLM keeps aliases unique, so the VirtualKey's key is
  not there. Requests: ceil(keys on the proxy / 100), plus one per missing
  alias up to the cap.
- `per-key`: one `GET /key/list?key_alias=<alias>` per wanted alias (the
  naive way, for comparison).

Along the way the fetcher notes which other key holds the alias of a wanted
key it did not find (`holders`, by alias), for `status.aliasHolder`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from function.poller.deadline import Deadline
from function.poller.litellm import PAGE_SIZE, LiteLLMClient, LiteLLMTemporaryError
from function.poller.records import KeyRecord

log = logging.getLogger(__name__)

MAX_PAGES = 1_000  # 100,000 keys a proxy; a proxy that pages on and on stops here
# Aliases confirmed one by one in a fetch, at most (each is one request).
MAX_CONFIRMATIONS = 20


class FetchMode(enum.StrEnum):
    """How keys are fetched."""

    BULK = "bulk"
    PER_KEY = "per-key"


@dataclass(frozen=True)
class Wanted:
    """What identifies one VirtualKey's key at LiteLLM: its alias and the VirtualKey."""

    alias: str
    owner: tuple[str, str]  # the VirtualKey's (namespace, name), as provenance names it


class _Matcher:
    """Matches listed keys to the wanted ones; remembers who else holds a wanted alias."""

    def __init__(self, wanted: list[Wanted]) -> None:
        self.wanted = wanted
        self.results: list[KeyRecord | None] = [None] * len(wanted)
        self._index: dict[tuple[str, tuple[str, str]], list[int]] = {}
        for i, w in enumerate(wanted):
            self._index.setdefault((w.alias, w.owner), []).append(i)
        self.left = len(self._index)
        self._aliases = {w.alias for w in wanted}
        self.held: dict[str, KeyRecord] = {}  # alias -> a live key listed with it

    def take(self, records: list[KeyRecord]) -> None:
        for record in records:
            alias = record.alias
            if alias is None or record.deleted or alias not in self._aliases:
                continue
            hits = self._index.get((alias, record.owner)) if record.owner else None
            if hits is not None and self.results[hits[0]] is None:
                for i in hits:
                    self.results[i] = record
                self.left -= 1
            # For every other VirtualKey with this alias, this key is the holder.
            self.held.setdefault(alias, record)

    def unseen(self) -> list[str]:
        """Wanted aliases of keys not found that no listed key holds, sorted."""
        return sorted(
            {
                self.wanted[i].alias
                for i, r in enumerate(self.results)
                if r is None and self.wanted[i].alias not in self.held
            }
        )

    def holders(self) -> dict[str, KeyRecord]:
        """Alias -> the other key holding it, for the wanted keys not found."""
        missing = {self.wanted[i].alias for i, r in enumerate(self.results) if r is None}
        return {alias: record for alias, record in self.held.items() if alias in missing}


@dataclass(eq=False)
class KeyFetcher:
    """Fetches keys from one proxy; takes turns over the aliases it confirms.

    Through `client` with `mode`; one fetch gets `deadline` seconds at most.
    """

    client: LiteLLMClient
    mode: FetchMode = FetchMode.BULK
    max_pages: int = MAX_PAGES
    deadline: float = 300.0
    max_confirmations: int = MAX_CONFIRMATIONS
    # Alias -> the key holding it, for wanted keys the last fetch did not find.
    holders: dict[str, KeyRecord] = field(default_factory=dict, init=False)
    # Where the next confirmations start, so every alias gets its turn.
    _turn: int = field(default=0, init=False)

    def fetch(
        self, wanted: list[Wanted], deadline: Deadline | None = None
    ) -> list[KeyRecord | None]:
        """One record or None per wanted key. Raises LiteLLMError, or Interrupted on stop."""
        own = Deadline.within(self.deadline, float("inf"))
        if deadline is None or own.until < deadline.until:
            deadline = Deadline(own.until, deadline.stop if deadline else None, own.limit)
        self.client.until, self.client.until_text = deadline.until, deadline.limit
        try:
            matcher = _Matcher(wanted)
            if wanted and self.mode is FetchMode.PER_KEY:
                for alias in sorted({w.alias for w in wanted}):
                    self._by_alias(alias, matcher, deadline)
            elif wanted:
                self._bulk(matcher, deadline)
            self.holders = matcher.holders()
            return matcher.results
        finally:
            self.client.until = None

    def _bulk(self, matcher: _Matcher, deadline: Deadline) -> None:
        for records in self._pages(deadline):
            matcher.take(records)
            if not matcher.left:
                return
        unseen = matcher.unseen()
        if not unseen:
            return
        start = self._turn % len(unseen)
        turn = (unseen[start:] + unseen[:start])[: self.max_confirmations]
        self._turn = start + len(turn)
        for alias in turn:
            if deadline.left() <= 0:
                # The listing stands for the rest: it did not show them.
                log.debug("out of time confirming missing keys; the listing stands")
                return
            self._by_alias(alias, matcher, deadline)

    def _by_alias(self, alias: str, matcher: _Matcher, deadline: Deadline) -> None:
        """Every key holding `alias` (one page: LiteLLM keeps aliases unique)."""
        deadline.check("GET /key/list for one alias")
        page = self.client.list_keys(1, PAGE_SIZE, alias=alias)
        matcher.take([r for r in page.records if r.alias == alias])

    def _pages(self, deadline: Deadline) -> Iterator[list[KeyRecord]]:
        """The pages of `GET /key/list`, up to the last one (or the caller's stop)."""
        page = 1
        while True:
            if page > self.max_pages:
                msg = f"GET /key/list: more than {self.max_pages} pages; stopped"
                raise LiteLLMTemporaryError(msg)
            deadline.check("GET /key/list")
            listing = self.client.list_keys(page, PAGE_SIZE)
            yield listing.records
            if page >= listing.total_pages or not listing.records:
                return
            page += 1
