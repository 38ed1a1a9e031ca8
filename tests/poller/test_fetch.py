"""Fetching keys: bulk paging that stops early, missing aliases confirmed, per key."""

from __future__ import annotations

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.fetch import FetchMode, KeyFetcher, Wanted
from function.poller.litellm import LiteLLMClient


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
