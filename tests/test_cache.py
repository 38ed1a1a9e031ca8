"""The caches are bounded in bytes (issue 9, item 9).

1,024 entries of maximal VirtualKeys were about 1.8 GB. Now every cache the
function keeps counts bytes: the response cache, the serialized resources,
the validated specs and the TenancyPolicies.
"""

from __future__ import annotations

import copy
import string
from typing import Any

from function import fn
from function.cache import BytesLRU
from function.fn import FunctionRunner
from function.keys import spec as model
from tests.conftest import load_example
from tests.grpc_harness import FunctionServer, make_request


def test_lru_by_bytes() -> None:
    cache: BytesLRU[str, str] = BytesLRU(10)
    cache.put("a", "A", 4)
    cache.put("b", "B", 4)
    assert cache.get("a") == "A"  # now b is the least recently used
    cache.put("c", "C", 4)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    assert cache.bytes == 8
    cache.put("huge", "H", 11)  # larger than the whole bound: not kept
    assert cache.get("huge") is None
    assert cache.bytes == 8
    cache.put("a", "A2", 6)  # replacing counts the new size only
    assert cache.bytes == 10
    assert len(cache) == 2


def maximal(index: int) -> dict[str, Any]:
    """A VirtualKey as large as the XRD allows."""
    xr = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    xr["metadata"]["name"] = f"big-{index}"
    letters = string.ascii_letters
    xr["spec"].update(
        keyAlias=f"big-{index}",
        models=[f"model-{index}-{i}-" + "m" * 200 for i in range(200)],
        metadata={f"k{i}": ((letters[i % 52] + str(index)) * 4096)[:4096] for i in range(64)},
        tags=[f"tag-{index}-{i}-" + "t" * 200 for i in range(64)],
    )
    return xr


def test_300_maximal_virtualkeys_stay_within_the_bounds() -> None:
    runner = FunctionRunner(cache_bytes=8 * 1024 * 1024)
    with FunctionServer(runner) as server:
        for index in range(300):
            rsp = server.run(make_request(maximal(index)))
            assert len(rsp.desired.resources) == 2, [r.message for r in rsp.results]
    caches = {
        "responses": (runner._cache, 8 * 1024 * 1024),
        "structs": (fn._STRUCTS, fn._STRUCTS.max_bytes),
        "specs": (model.parse_spec.cache, model.parse_spec.cache.max_bytes),  # type: ignore[attr-defined]
    }
    for name, (cache, bound) in caches.items():
        assert 0 < cache.bytes <= bound, name
        assert len(cache) < 300, f"{name}: nothing was evicted"
