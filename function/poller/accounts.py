"""Users' and Teams' spend and budget state, read in bulk and written to their status.

The second half of every cycle (`function.poller.cycle.Poller.cycle`), with
the same rules as for keys:

- which instance a User or Team may be read from is decided by the
  function's own rules (`function.tenancy.connect`); one the function
  would refuse is skipped;
- per instance, one paged listing of users (`GET /user/list`, only the IDs
  wanted) and one of teams (`GET /v2/team/list`), never one call per object;
- an error from LiteLLM or a malformed answer writes nothing: every status
  keeps its last values, and the instance backs off with its keys;
- only fields that changed are written, as a merge patch of the status
  subresource, and the IDs are matched against `<namespace>.<id>` computed
  from the object itself (`function.identity`), never from its status.

- `account_targets(objects, policies, labels)` -> what to read and where.
- `read_accounts(client, targets, max_pages)` -> each target's `Account`.
- `account_patch(status, account)` -> the status merge patch, or None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from function.compose import owner_of
from function.connection import Connection
from function.identity import litellm_id
from function.model import InvalidInputError
from function.policy import Policies, Tenant
from function.poller.kube import XRRef
from function.poller.litellm import LiteLLMClient, LiteLLMTemporaryError
from function.poller.records import MalformedKeyError, parse_time
from function.poller.state import dollars, rfc3339
from function.teams import parse_team_spec
from function.tenancy import connect
from function.users import parse_user_spec

PAGE_SIZE = 100
TEAM_PLURAL = "teams"
TEAM_PLURALS = (TEAM_PLURAL, "xteams")
LEGACY_KINDS = ("XUser", "XTeam")
# LiteLLM's own admin member of every team it creates: not the tenant's.
MASTER_KEY_USER = "default_user_id"


@dataclass
class AccountTarget:
    """One User or Team to read."""

    ref: XRRef
    obj: dict[str, Any]
    litellm_id: str
    connection: Connection

    @property
    def is_team(self) -> bool:
        """A Team (else a User)."""
        return self.ref.plural in TEAM_PLURALS


@dataclass(frozen=True)
class Account:
    """What LiteLLM holds for one user or team."""

    spend: Decimal
    budget_reset_at: str | None
    members: tuple[tuple[str, str], ...] = ()  # (user ID, role), teams only


def account_targets(
    objects: list[tuple[XRRef, dict[str, Any]]],
    policies: Policies,
    labels: dict[str, dict[str, str]],
    skip: Callable[[XRRef, InvalidInputError], None],
) -> list[AccountTarget]:
    """Every User and Team the function would reach, with its instance; `skip` hears of others."""
    found = []
    for ref, obj in objects:
        if _is_claim(obj):
            continue  # its XR is read; Crossplane copies the XR's status to it
        try:
            owner = owner_of(obj)
            if ref.plural in TEAM_PLURALS:
                team = parse_team_spec(obj.get("spec"))
                local, connection_ref = team.team_id, team.connection_ref
            else:
                user = parse_user_spec(obj.get("spec"))
                local, connection_ref = user.user_id, user.connection_ref
            tenant = Tenant(owner.namespace, labels.get(owner.namespace))
            connection = connect(connection_ref, tenant, policies).connection
        except InvalidInputError as e:
            skip(ref, e)
            continue
        ident = litellm_id(owner.namespace, local or owner.virtualkey)
        found.append(AccountTarget(ref, obj, ident, connection))
    return found


def _is_claim(obj: dict[str, Any]) -> bool:
    """A legacy claim, bound to its cluster-scoped XR."""
    resource_ref = (obj.get("spec") or {}).get("resourceRef")
    return isinstance(resource_ref, dict) and resource_ref.get("kind") in LEGACY_KINDS


def _money(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        msg = f"{what}: 'spend' is not a number"
        raise LiteLLMTemporaryError(msg)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        msg = f"{what}: 'spend' is not a number"
        raise LiteLLMTemporaryError(msg) from None
    if not amount.is_finite() or amount < 0:
        msg = f"{what}: 'spend' is not a finite amount"
        raise LiteLLMTemporaryError(msg)
    return amount


def _account(obj: dict[str, Any], what: str, *, team: bool) -> Account:
    try:
        reset = parse_time(obj.get("budget_reset_at"), "budget_reset_at")
    except MalformedKeyError as e:
        msg = f"{what}: {e}"
        raise LiteLLMTemporaryError(msg) from None
    members: list[tuple[str, str]] = []
    if team:
        for member in obj.get("members_with_roles") or []:
            if not isinstance(member, dict):
                continue
            user, role = member.get("user_id"), member.get("role")
            if isinstance(user, str) and isinstance(role, str) and user != MASTER_KEY_USER:
                members.append((user, role))
    return Account(
        spend=_money(obj.get("spend", 0), what),
        budget_reset_at=rfc3339(reset) if reset else None,
        members=tuple(sorted(members)),
    )


def _pages(
    client: LiteLLMClient, path: str, field: str, params: dict[str, Any], max_pages: int
) -> list[dict[str, Any]]:
    """Every object of a paged LiteLLM listing (`field` holds the page's objects)."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        what = f"GET {path} page {page}"
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


def read_accounts(
    client: LiteLLMClient, targets: list[AccountTarget], max_pages: int
) -> list[Account | None]:
    """Each target's user or team on the proxy (None: not there).

    One listing of teams, and one of users per 100 wanted, however many there are.
    """
    wanted_users = sorted({t.litellm_id for t in targets if not t.is_team})
    users: dict[str, Account] = {}
    # The IDs go in the query string: 100 at a time keeps it short (a few kB).
    chunks = [wanted_users[i : i + PAGE_SIZE] for i in range(0, len(wanted_users), PAGE_SIZE)]
    for chunk in chunks:
        params = {"user_ids": ",".join(chunk)}
        for obj in _pages(client, "/user/list", "users", params, max_pages):
            ident = obj.get("user_id")
            if isinstance(ident, str) and ident in chunk:
                users[ident] = _account(obj, f"user {ident}", team=False)
    teams: dict[str, Account] = {}
    if any(t.is_team for t in targets):
        wanted_teams = {t.litellm_id for t in targets if t.is_team}
        for obj in _pages(client, "/v2/team/list", "teams", {}, max_pages):
            ident = obj.get("team_id")
            if isinstance(ident, str) and ident in wanted_teams:
                teams[ident] = _account(obj, f"team {ident}", team=True)
    return [(teams if t.is_team else users).get(t.litellm_id) for t in targets]


def account_patch(
    status: dict[str, Any], account: Account | None, *, team: bool
) -> dict[str, Any] | None:
    """The status merge patch for what LiteLLM holds, or None when nothing changed.

    A user or team LiteLLM does not have (yet) changes nothing: the
    function's condition says why, and the last values stay.
    """
    if account is None:
        return None
    wanted: dict[str, Any] = {
        "spend": dollars(account.spend),
        "budgetResetAt": account.budget_reset_at,
    }
    if team:
        wanted["members"] = [{"userID": u, "role": r} for u, r in account.members]
    patch = {k: v for k, v in wanted.items() if status.get(k) != v}
    return patch or None
