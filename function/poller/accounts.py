"""Users' and Teams' spend and budget state, read in bulk and written to their status.

The second half of every cycle (`function.poller.cycle.Poller.cycle`), with
the same rules as for keys:

- which instance a User or Team may be read from is decided by the
  function's own rules (`function.tenancy.decide.connect`); one the function
  would refuse is skipped;
- per instance, one paged listing of users (`GET /user/list`, only the IDs
  wanted) and one of teams (`GET /v2/team/list`), never one call per object,
  within the instance's deadline and page cap, stopping on the stop signal;
- an error from LiteLLM or a malformed answer writes nothing: every status
  keeps its last values, and the instance backs off with its keys; one
  user or team whose object cannot be read (a spend of 1e300, NaN, a
  string) is `Account.problem` for that object alone;
- a LiteLLM user or team counts for a User or Team only if its ID is
  `<namespace>.<id>`, computed from the object itself (`function.accounts.identity`),
  AND its metadata's provenance names that object
  (`function.provenance.owner(metadata, USER or TEAM)`): a tenant whose
  `<namespace>.<userID>` happens to be a platform user's ID (namespace
  `john`, userID `doe@corp.example`, and the platform's
  `john.doe@corp.example`) never gets that user's spend. Nothing in the
  object's status takes part;
- only fields that changed are written, as a merge patch of the status
  subresource.

- `listed_account_targets(cluster, tenancy)`, `account_targets(objects,
  tenancy)` -> what to read and where.
- `read_accounts(client, targets, max_pages, deadline)` -> each target's `Account`.
- `account_patch(status, account)` -> the status merge patch, or None;
  `write_account(writer, target, account, should_write)` writes it, and
  `account_writes(...)` gives one such write per object, for `Writer.each`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from function import provenance
from function.accounts.identity import litellm_id
from function.accounts.spec import parse_team_spec, parse_user_spec
from function.composed import owner_of
from function.poller.deadline import Deadline
from function.poller.kube import Cluster, XRRef
from function.poller.kubeapi import KubeError
from function.poller.litellm import LiteLLMClient, LiteLLMTemporaryError
from function.poller.records import MalformedKeyError, amount, parse_time
from function.poller.redact import redact
from function.poller.tenancy import Tenancy, log_skipped
from function.poller.writer import Writer
from function.tenancy.connection import Connection
from function.tenancy.decide import connect
from function.units import money, rfc3339

log = logging.getLogger(__name__)

PAGE_SIZE = 100
TEAM_PLURAL = "teams"
TEAM_PLURALS = (TEAM_PLURAL, "xteams")
LEGACY_KINDS = ("XUser", "XTeam")


@dataclass
class AccountTarget:
    """One User or Team to read."""

    ref: XRRef
    obj: dict[str, Any]
    litellm_id: str
    connection: Connection
    # The (namespace, name) the user's or team's provenance must name.
    owner: tuple[str, str] = ("", "")
    # On a tenant-owned proxy (connectionRef.url), not a platform instance.
    tenant_proxy: bool = False

    @property
    def is_team(self) -> bool:
        """A Team (else a User)."""
        return self.ref.plural in TEAM_PLURALS

    @property
    def namespace(self) -> str:
        """The tenant's namespace."""
        return self.owner[0]


@dataclass(frozen=True)
class Account:
    """What LiteLLM holds for one user or team."""

    spend: Decimal
    budget_reset_at: str | None
    members: tuple[tuple[str, str], ...] = ()  # (user ID, role), teams only
    # Why LiteLLM's object for it cannot be read (None: it can); nothing is written then.
    problem: str | None = None

    @classmethod
    def unreadable(cls, problem: str) -> Account:
        """A user or team LiteLLM listed whose object is malformed."""
        return cls(Decimal(0), None, problem=problem)


def listed_account_targets(cluster: Cluster, tenancy: Tenancy) -> list[AccountTarget]:
    """Every User and Team the function would reach; none when they cannot be listed."""
    try:
        objects = cluster.list_accounts()
    except KubeError as e:
        # Keys go on without them (an older RBAC may not grant users and teams).
        log.warning("cannot list Users and Teams: %s; their status is not updated", redact(e))
        return []
    return account_targets(objects, tenancy)


def account_targets(
    objects: list[tuple[XRRef, dict[str, Any]]], tenancy: Tenancy
) -> list[AccountTarget]:
    """Every User and Team the function would reach, with its instance; others are skipped."""
    found = []
    for ref, obj in objects:
        if _is_claim(obj):
            continue  # its XR is read; Crossplane copies the XR's status to it
        try:
            found.append(_account_target(ref, obj, tenancy))
        except Exception as e:  # a refusal, or anything else: this object alone
            log_skipped(ref, e)
    return found


def _account_target(ref: XRRef, obj: dict[str, Any], tenancy: Tenancy) -> AccountTarget:
    """What to read for one User or Team and where; raises on a refusal."""
    owner = owner_of(obj)
    if ref.plural in TEAM_PLURALS:
        team = parse_team_spec(obj.get("spec"))
        local, connection_ref = team.team_id, team.connection_ref
    else:
        user = parse_user_spec(obj.get("spec"))
        local, connection_ref = user.user_id, user.connection_ref
    granted = connect(connection_ref, tenancy.tenant(owner.namespace), tenancy.policies)
    return AccountTarget(
        ref,
        obj,
        litellm_id(owner.namespace, local or owner.virtualkey),
        granted.connection,
        owner=(owner.namespace, owner.virtualkey),
        tenant_proxy=connection_ref.instance_ref is None,
    )


def _is_claim(obj: dict[str, Any]) -> bool:
    """A legacy claim, bound to its cluster-scoped XR."""
    resource_ref = (obj.get("spec") or {}).get("resourceRef")
    return isinstance(resource_ref, dict) and resource_ref.get("kind") in LEGACY_KINDS


def _account(obj: dict[str, Any], *, team: bool) -> Account:
    """One user's or team's object, or `Account.unreadable` (this object alone)."""
    try:
        return _parse_account(obj, team=team)
    except MalformedKeyError as e:
        return Account.unreadable(str(e))
    except Exception as e:  # whatever a proxy sends stays with its object
        return Account.unreadable(f"an internal error ({type(e).__name__})")


def _parse_account(obj: dict[str, Any], *, team: bool) -> Account:
    reset = parse_time(obj.get("budget_reset_at"), "budget_reset_at")
    spend = amount(obj.get("spend", 0), "spend", signed=False)
    members: list[tuple[str, str]] = []
    if team:
        listed = obj.get("members_with_roles")
        for member in listed if isinstance(listed, list) else []:
            if not isinstance(member, dict):
                continue
            user, role = member.get("user_id"), member.get("role")
            if (
                isinstance(user, str)
                and isinstance(role, str)
                and user != provenance.MASTER_KEY_USER
            ):
                members.append((user, role))
    return Account(
        spend=spend,
        budget_reset_at=rfc3339(reset) if reset else None,
        members=tuple(sorted(members)),
    )


def _pages(
    client: LiteLLMClient,
    path: str,
    field: str,
    params: dict[str, Any],
    *,
    limits: tuple[int, Deadline],
) -> list[dict[str, Any]]:
    """Every object of a paged LiteLLM listing (`field` holds the page's objects).

    `limits`: the most pages read, and the deadline checked before each one.
    """
    max_pages, deadline = limits
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        what = f"GET {path} page {page}"
        deadline.check(what)
        body = client.get(path, what, params={**params, "page": page, "page_size": PAGE_SIZE})
        items = body.get(field) if isinstance(body, dict) else None
        total = body.get("total_pages") if isinstance(body, dict) else None
        if not isinstance(items, list) or not isinstance(total, int) or isinstance(total, bool):
            msg = f"{what}: no {field!r} list or 'total_pages' count"
            raise LiteLLMTemporaryError(msg)
        found.extend(i for i in items if isinstance(i, dict))
        if page >= total or not items:
            return found
        if page >= max_pages:
            msg = f"{what}: more than {max_pages} pages; raise --litellm-max-pages"
            raise LiteLLMTemporaryError(msg)
        page += 1


def _matched(
    objects: list[dict[str, Any]],
    id_field: str,
    name_key: str,
    targets: list[tuple[int, AccountTarget]],
    found: list[Account | None],
) -> None:
    """Fill `found` for the targets whose ID an object has AND whose provenance it names."""
    by_id: dict[str, list[tuple[int, AccountTarget]]] = {}
    for index, target in targets:
        by_id.setdefault(target.litellm_id, []).append((index, target))
    for obj in objects:
        ident = obj.get(id_field)
        candidates = by_id.get(ident) if isinstance(ident, str) else None
        if not candidates:
            continue
        named = provenance.owner(obj.get("metadata"), name_key)
        for index, target in candidates:
            if named == target.owner and found[index] is None:
                found[index] = _account(obj, team=target.is_team)


def read_accounts(
    client: LiteLLMClient,
    targets: list[AccountTarget],
    max_pages: int,
    deadline: Deadline | None = None,
) -> list[Account | None]:
    """Each target's user or team on the proxy (None: not there, or not made for it).

    One listing of teams, and one of users per 100 wanted, however many there
    are. Raises LiteLLMError (the whole proxy), or Interrupted on stop.
    """
    deadline = deadline or Deadline(float("inf"))
    client.until = deadline.until if deadline.until != float("inf") else None
    client.until_text = deadline.limit
    limits = (max_pages, deadline)
    try:
        found: list[Account | None] = [None] * len(targets)
        users = [(i, t) for i, t in enumerate(targets) if not t.is_team]
        wanted_users = sorted({t.litellm_id for _, t in users})
        # The IDs go in the query string: 100 at a time keeps it short (a few kB).
        for start in range(0, len(wanted_users), PAGE_SIZE):
            chunk = wanted_users[start : start + PAGE_SIZE]
            params = {"user_ids": ",".join(chunk)}
            listed = _pages(client, "/user/list", "users", params, limits=limits)
            in_chunk = [(i, t) for i, t in users if t.litellm_id in chunk]
            _matched(listed, "user_id", provenance.USER, in_chunk, found)
        teams = [(i, t) for i, t in enumerate(targets) if t.is_team]
        if teams:
            listed = _pages(client, "/v2/team/list", "teams", {}, limits=limits)
            _matched(listed, "team_id", provenance.TEAM, teams, found)
        return found
    finally:
        client.until = None


def account_patch(
    status: dict[str, Any], account: Account | None, *, team: bool
) -> dict[str, Any] | None:
    """The status merge patch for what LiteLLM holds, or None when nothing changed.

    A user or team LiteLLM does not have (yet) changes nothing: the
    function's condition says why, and the last values stay.
    """
    if account is None or account.problem is not None:
        return None
    wanted: dict[str, Any] = {
        "spend": money(account.spend),
        "budgetResetAt": account.budget_reset_at,
    }
    if team:
        wanted["members"] = [{"userID": u, "role": r} for u, r in account.members]
    patch = {k: v for k, v in wanted.items() if status.get(k) != v}
    return patch or None


def account_writes(
    writer: Writer,
    found: list[tuple[AccountTarget, Account | None]],
    should_write: Callable[[], bool],
) -> Iterator[tuple[XRRef, Callable[[], bool]]]:
    """Each User's or Team's status write, for `Writer.each`."""
    for target, account in found:
        yield target.ref, partial(write_account, writer, target, account, should_write)


def write_account(
    writer: Writer,
    target: AccountTarget,
    account: Account | None,
    should_write: Callable[[], bool],
) -> bool:
    """Merge-patch what changed into one User's or Team's status; whether it was written.

    No resourceVersion: the fields are the poller's alone, and a stale
    value is replaced by the next cycle.
    """
    if account is not None and account.problem is not None:
        log.warning(
            "LiteLLM's object for %s cannot be read (%s); its status keeps its last values",
            target.ref,
            account.problem,
        )
        return False
    status = target.obj.get("status") or {}
    patch = account_patch(status, account, team=target.is_team)
    if patch is None or not should_write():
        return False
    return writer.patch(target.ref, {"status": patch})
