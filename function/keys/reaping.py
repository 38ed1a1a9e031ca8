"""What a VirtualKey's Requests leave behind, composed until it is cleaned up. Pure.

- `reap(ctx, current, also=..., judge=...)` -> `Reaping`: a reaper Request
  (`function.keys.strays`) for each key made from a changed Secret, or
  holding this key's alias (`also`), a few a run.
- `lingering(observed, desired)`: Requests replaced right after their CREATE,
  kept reading instead of creating until provider-http has observed them.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

from function.composed import Desired
from function.keys import strays
from function.keys.context import KeyContext, observed_requests
from function.keys.request import READ_INSTEAD_OF_CREATE, token_in_request
from function.provider_http.answers import provider_has_it
from function.provider_http.readiness import created_just_now
from function.provider_http.request import as_observed


@dataclass(frozen=True)
class Reaping:
    """The reapers composed this run, and what to tell the tenant about them."""

    resources: dict[str, Desired]
    warnings: list[str]


def reap(
    ctx: KeyContext,
    current: str,
    *,
    also: frozenset[str],
    judge: functools.partial[strays.Verdict],
) -> Reaping:
    """Reaper Requests for keys made from a changed Secret, or holding this key's alias.

    A stray is found in provider-http's stored answer to a CREATE (its token
    is not the Request's), and remembered afterwards by its reaper, which
    Crossplane observes. A reaper starts Observe-only; it deletes only once
    its own answer proved the key is this VirtualKey's (`strays.judge`).
    """
    requests = observed_requests(ctx.observed)
    # A replaced Request may have created the current key from the rewritten
    # Secret: a key one of our Requests names is never a stray.
    ours = {token_in_request(r) for r in requests.values()} | {current}
    found: set[str] = set()
    for request in requests.values():
        found |= strays.stray_tokens(request, token_in_request(request))
    found -= ours
    warnings = []
    if found:
        warnings.append(
            "A key was created from a key Secret changed after the function wrote it "
            f"(token {', '.join(sorted(t[:12] for t in found))}...); nothing tracks "
            "such a key, so it is being deleted once LiteLLM confirms it is this VirtualKey's."
        )
    pending = sorted((found | strays.reaper_tokens(ctx.observed) | also) - ours)
    if len(pending) > strays.MAX_REAPERS:
        warnings.append(
            f"{len(pending)} keys wait to be checked and deleted; {strays.MAX_REAPERS} are "
            "handled at a time, the others on the next runs."
        )
    resources: dict[str, Desired] = {}
    for token in pending[: strays.MAX_REAPERS]:
        reaper = _reaper(ctx, token, judge, warnings)
        if reaper is not None:
            resources[strays.reaper_resource(token)] = Desired(reaper, ready=True)
    return Reaping(resources, warnings)


def _reaper(
    ctx: KeyContext,
    token: str,
    judge: functools.partial[strays.Verdict],
    warnings: list[str],
) -> dict[str, Any] | None:
    """The reaper for one key, or None once it is to be dropped (its work done, or not ours)."""
    seen = ctx.observed.get(strays.reaper_resource(token))
    verdict = judge(seen) if provider_has_it(seen) else strays.Verdict.UNKNOWN
    if verdict is strays.Verdict.GONE:
        return None  # dropped: nothing left to delete
    if verdict is strays.Verdict.OURS and not strays.observes_only(seen):
        return None  # dropped: Crossplane deletes it, and its REMOVE the key
    if verdict is strays.Verdict.NOT_OURS:
        warnings.append(
            f"A key (token {token[:12]}...) that looked like this VirtualKey's is "
            "someone else's (another alias or provenance): it is not deleted."
        )
        if strays.observes_only(seen):
            return None  # dropped, it deletes nothing
    may_delete = verdict is strays.Verdict.OURS or (
        verdict is strays.Verdict.UNKNOWN and seen is not None and not strays.observes_only(seen)
    )
    return strays.reaper(
        name=f"{ctx.owner.base_name}-stray-{token[:8]}",
        token=token,
        may_delete=may_delete,
        place=ctx.place,
    )


def lingering(observed: dict[str, dict[str, Any]], desired: set[str]) -> dict[str, Desired]:
    """Replaced Requests kept, reading instead of creating, until provider-http observes again.

    Right after CREATE (its stored answer still /key/generate's), a Request's
    spec may predate the function's `created`: its CREATE still sends the key
    Secret's value. Replaced then (the Secret lost, a stray), and reconciled
    again before Crossplane deletes it, it would create whatever key that
    Secret now holds, the new key included, under the old Request. So it is
    kept until its stored answer is another call's, with its CREATE only
    reading its own key; then dropped, and deleting it runs its REMOVE.
    """
    kept = {}
    for name, request in observed_requests(observed).items():
        if name in desired or not created_just_now(request):
            continue
        spec = copy.deepcopy(request.get("spec") or {})
        for_provider = spec.get("forProvider")
        if not isinstance(for_provider, dict) or not isinstance(for_provider.get("mappings"), list):
            continue  # not one of ours as we wrote it: let Crossplane delete it
        for_provider["mappings"] = [
            READ_INSTEAD_OF_CREATE if isinstance(m, dict) and m.get("action") == "CREATE" else m
            for m in for_provider["mappings"]
        ]
        kept[name] = Desired(as_observed(request, spec=spec), ready=True)
    return kept
