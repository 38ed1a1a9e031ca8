"""A User: one LiteLLM user, and with `autoCreateKey` its VirtualKey. Pure.

`compose_user(given)` -> `Composed`:

- `user` -> the provider-http Request of the user (`/user/new`, `info`,
  `update`, `delete`). `/user/new` is always sent `auto_create_key: false`:
  the key LiteLLM would make on its own would be a live key nothing tracks.
- `virtualkey` -> with `autoCreateKey: true`, once the user exists on the
  proxy: an ordinary VirtualKey in the same namespace (same Secret, status
  and poller), with the user's keyAlias, models, budget, duration and
  connection, bound to the user by `userRef`.

Where the budget is enforced: LiteLLM keeps `max_budget` and
`budget_duration` on the user and counts every key of the user against
it. The composed VirtualKey carries the same budget, so a key the user
makes by other means cannot spend the auto-created key's share twice, and
the auto-created key alone stops at the budget too. `softBudget` and
`blocked` exist only on keys in LiteLLM, so they go to that key alone.

The user's LiteLLM ID is `<namespace>.<userID or metadata.name>`
(`function.accounts.identity`). Its role must be one the TenancyPolicy grants the
namespace (`users.roles`; `internal_user` only by default).
"""

from __future__ import annotations

from typing import Any

from function.accounts.identity import KINDS, litellm_id
from function.accounts.requests import ACCOUNT_KIND, Account, account_fields
from function.accounts.spec import UserSpec, parse_user_spec
from function.composed import MANAGED_BY, Composed, Desired, Given, Owner, only_set, owner_of
from function.input import parse_input
from function.provider_http.readiness import KeyState, state_of
from function.tenancy.decide import check_role, connect
from function.tenancy.policy import Tenant

CONDITION_TYPE = "UserReady"
USER_RESOURCE = "user"
KEY_RESOURCE = "virtualkey"
VIRTUALKEY_API_VERSION = "auth.litellm.ai/v1alpha1"


def user_fields(spec: UserSpec) -> dict[str, Any]:
    """The fields LiteLLM keeps on the user (`models` absent means all models)."""
    return account_fields(
        spec,
        ("user_email", "user_role", "models", "metadata"),
        optional=(
            "user_alias",
            "max_budget",
            "budget_duration",
            "tpm_limit",
            "rpm_limit",
            "max_parallel_requests",
        ),
    )


# The User's fields its VirtualKey carries too.
_KEY_FIELDS = ("max_budget", "soft_budget", "budget_duration", "duration", "blocked")


def user_key_spec(spec: UserSpec, user_name: str) -> dict[str, Any]:
    """The spec of the VirtualKey a User with autoCreateKey composes."""
    key: dict[str, Any] = {
        "keyAlias": spec.key_alias,
        "models": list(spec.models),
        "userRef": {"name": user_name},
        "connectionRef": spec.connection_ref.model_dump(by_alias=True, exclude_none=True),
    }
    carried = {UserSpec.model_fields[n].alias or n: getattr(spec, n) for n in _KEY_FIELDS}
    key.update(only_set(carried))
    return key


def _ready_condition(observed: dict[str, Any] | None) -> bool:
    conditions = ((observed or {}).get("status") or {}).get("conditions")
    return isinstance(conditions, list) and any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )


def compose_user(given: Given) -> Composed:
    """The desired state for one User (raises InvalidInputError)."""
    observed = given.observed
    settings = parse_input(given.raw_input)
    owner = owner_of(given.xr)
    spec = parse_user_spec(given.xr.get("spec"))
    tenant = Tenant(owner.namespace, given.namespace_labels)
    grant = connect(spec.connection_ref, tenant, given.policies)
    check_role(spec.user_role, tenant, grant)
    user_id = litellm_id(owner.namespace, spec.user_id or owner.virtualkey)
    labels = {**MANAGED_BY, "auth.litellm.ai/user": owner.virtualkey[:63].rstrip("-.")}
    # A Team asks Crossplane for every user Request by its ACCOUNT_KIND label.
    place = settings.place(owner.namespace, grant.connection, {**labels, ACCOUNT_KIND: "user"})
    user = Account(KINDS["User"], owner, user_id, place)
    request = user.request(
        user_fields(spec), observed.get(USER_RESOURCE), create_extra={"auto_create_key": False}
    )
    subject = user.subject
    state = state_of(observed.get(USER_RESOURCE), grant.connection, subject)
    resources = {USER_RESOURCE: Desired(request, ready=state.ready)}
    warnings = [f"{state.reason}: {state.message}"] if state.is_problem else []
    if spec.auto_create_key and (state.ready or KEY_RESOURCE in observed):
        # Only once the user exists on the proxy: the key's userRef waits for it.
        resources[KEY_RESOURCE], state = _user_key(
            spec, owner, labels=labels, observed=observed, state=state, subject=subject
        )
    status: dict[str, Any] = {}
    if state.ready or state.reason == "KeyCreating":
        status["userID"] = user_id
    if spec.auto_create_key:
        status["virtualKeyRef"] = f"{owner.base_name}-key"
    return Composed(
        resources=resources,
        status=status,
        state=state,
        warnings=warnings,
        condition=CONDITION_TYPE,
    )


def _user_key(  # noqa: PLR0913 - each argument is one independent fact.
    spec: UserSpec,
    owner: Owner,
    *,
    labels: dict[str, str],
    observed: dict[str, dict[str, Any]],
    state: KeyState,
    subject: str,
) -> tuple[Desired, KeyState]:
    """The User's VirtualKey, and the User's state while that key is not ready."""
    key = {
        "apiVersion": VIRTUALKEY_API_VERSION,
        "kind": "VirtualKey",
        "metadata": {
            "name": f"{owner.base_name}-key",
            "namespace": owner.namespace,
            "labels": labels,
        },
        "spec": user_key_spec(spec, owner.virtualkey),
    }
    key_ready = _ready_condition(observed.get(KEY_RESOURCE))
    if state.ready and not key_ready:
        state = KeyState(
            ready=False,
            reason="KeyCreating",
            message=f"{subject} is in place; waiting for its VirtualKey "
            f"{owner.namespace}/{owner.base_name}-key to be ready.",
        )
    return Desired(key, ready=key_ready), state
