"""What one VirtualKey may do, decided from the platform's TenancyPolicies. Pure.

`authorize(spec, tenant, policies)` -> `Authorization`: the connection (URL
and master-key Secret) the key's Requests use, and the LiteLLM team and user
the key gets. Anything the rules do not grant raises `PolicyRefusedError`,
whose message names the spec field, the namespace, the rules that apply
and what to change. The function turns that into a Fatal result; the poller
skips the key, so neither ever sends a master key where the other would not.

The rules (docs/tenancy.md):

- `instanceRef` must name an instance that a rule selecting the namespace
  grants. Its URL and Secret come from the policy's declaration, never from
  the tenant. Two declarations of one instance that disagree are refused.
- `url` with `masterKeySecretRef` (a tenant-owned proxy) needs a rule with
  `tenantProxies.allow`, a Secret in the tenant's own namespace and a URL
  that passes `function.tenancy.connection.checked_tenant_url`.
- `teamID`: absent means the team the rules `bind` (if any); present, it
  must be bound or allowed by a rule that grants the instance.
- `userID`: only IDs a rule that grants the instance allows.
- On a tenant-owned proxy the tenant holds the master key already, so team
  and user are its own business there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from function.tenancy.connection import (
    Connection,
    ConnectionRef,
    MasterKeyRef,
    checked_tenant_url,
)
from function.tenancy.policy import Instance, Policies, Rule, Tenant
from function.units import duration
from function.validation import InvalidInputError


class AskedRotation(Protocol):
    """The rotation a key asks for."""

    @property
    def every(self) -> str | None:
        """How often it rotates (None: on trigger only)."""

    @property
    def grace_period(self) -> str:
        """How long a rotated-out key keeps working."""


class AskedKey(Protocol):
    """What a key asks the policy for; `function.keys.spec.VirtualKeySpec` is one.

    A protocol, so that tenancy, below every kind, imports none of them.
    """

    @property
    def connection_ref(self) -> ConnectionRef:
        """The LiteLLM instance or proxy it names."""

    @property
    def team_id(self) -> str | None:
        """The LiteLLM team it names, if any."""

    @property
    def user_id(self) -> str | None:
        """The LiteLLM user it names, if any."""

    @property
    def rotation(self) -> AskedRotation | None:
        """Its rotation, if any."""


class PolicyRefusedError(InvalidInputError):
    """The tenancy policy does not grant what the VirtualKey asks for."""


@dataclass(frozen=True)
class Authorization:
    """What a VirtualKey is allowed to use, and which rules allowed it."""

    connection: Connection
    team_id: str | None
    user_id: str | None
    rules: tuple[str, ...]
    # `<TenancyPolicy>/<rule>` of the first granting rule, recorded on each key.
    policy: str = ""
    # A rule lets the key replace a key on the proxy that holds its alias.
    replace_foreign_keys: bool = False
    # No rotation starts sooner than this after the last one.
    min_rotation: timedelta = timedelta(0)


@dataclass(frozen=True)
class Grant:
    """The connection a resource may use, and the rules that granted it."""

    connection: Connection
    rules: tuple[Rule, ...]
    tenant_proxy: bool

    @property
    def names(self) -> tuple[str, ...]:
        """How refusals and Authorization name the granting rules."""
        return tuple(r.name for r in self.rules)

    @property
    def policy(self) -> str:
        """`<TenancyPolicy>/<rule>` of the first granting rule, for provenance."""
        return f"{self.rules[0].policy}/{self.rules[0].spec.name}" if self.rules else ""

    @property
    def min_rotation(self) -> tuple[timedelta, str]:
        """The shortest rotation interval a granting rule allows, and as it is written.

        No limit on a tenant's own proxy: the tenant holds its master key anyway.
        """
        if self.tenant_proxy or not self.rules:
            return timedelta(0), "0s"
        return min(
            (duration(r.spec.keys.min_rotation_interval), r.spec.keys.min_rotation_interval)
            for r in self.rules
        )

    @property
    def max_grace_period(self) -> tuple[timedelta, str] | None:
        """The longest grace period a granting rule allows, and as it is written.

        None on a tenant's own proxy, where the tenant holds the master key anyway.
        """
        if self.tenant_proxy or not self.rules:
            return None
        return min(
            (duration(r.spec.keys.max_grace_period), r.spec.keys.max_grace_period)
            for r in self.rules
        )

    @property
    def replace_foreign_keys(self) -> bool:
        """Whether a granting rule opts in to replacing keys the function did not make."""
        return any(r.spec.keys.replace_foreign_keys for r in self.rules)


def connect(ref: ConnectionRef, tenant: Tenant, policies: Policies) -> Grant:
    """The connection `ref` may use in the tenant's namespace (raises PolicyRefusedError).

    Shared by every kind (VirtualKey, User, Team): the same rules decide
    which proxy any of them may reach with which master key.
    """
    rules = policies.rules_for(tenant)
    if ref.instance_ref is not None:
        return _platform_instance(ref, tenant, policies, rules)
    return _tenant_proxy(ref, tenant, policies, rules)


def authorize(
    spec: AskedKey,
    tenant: Tenant,
    policies: Policies,
    *,
    own_team: str | None = None,
    own_user: str | None = None,
) -> Authorization:
    """Decide what the VirtualKey may use (raises PolicyRefusedError).

    `own_team` and `own_user` are the LiteLLM IDs of the Team and User that
    spec.teamRef and spec.userRef name: the namespace's own, so no rule
    needs to list them. A User's role was checked when the User was.
    """
    grant = connect(spec.connection_ref, tenant, policies)
    min_rotation = _rotation_interval(spec, tenant, grant)
    _check_grace_period(spec, tenant, grant)
    if grant.tenant_proxy:
        return Authorization(
            connection=grant.connection,
            team_id=own_team or spec.team_id,
            user_id=own_user or spec.user_id,
            rules=grant.names,
            policy=grant.policy,
            replace_foreign_keys=grant.replace_foreign_keys,
            min_rotation=min_rotation,
        )
    grants = list(grant.rules)
    return Authorization(
        connection=grant.connection,
        team_id=_own_team(own_team, tenant, grants)
        if own_team is not None
        else _team(spec.team_id, tenant, grants),
        user_id=own_user if own_user is not None else _user(spec.user_id, tenant, grants),
        rules=grant.names,
        policy=grant.policy,
        replace_foreign_keys=grant.replace_foreign_keys,
        min_rotation=min_rotation,
    )


def _rotation_interval(spec: AskedKey, tenant: Tenant, grant: Grant) -> timedelta:
    """The shortest time between rotations; refuses a schedule more often than that."""
    least, written = grant.min_rotation
    every = spec.rotation.every if spec.rotation is not None else None
    if every is not None and duration(every) < least:
        msg = (
            f"spec.rotation.every: {every!r} rotates more often than namespace "
            f"{tenant.namespace!r} may (rules granting this instance: {', '.join(grant.names)}; "
            f"the shortest interval they allow: {written}). Every rotation makes and deletes "
            "a key on the proxy: rotate less often, or ask the platform team to lower "
            "keys.minRotationInterval in the rule"
        )
        raise PolicyRefusedError(msg)
    return least


def _check_grace_period(spec: AskedKey, tenant: Tenant, grant: Grant) -> None:
    """Refuse a grace period longer than the rules allow: the old key is a second live key."""
    most = grant.max_grace_period
    if spec.rotation is None or most is None:
        return
    longest, written = most
    if duration(spec.rotation.grace_period) > longest:
        msg = (
            f"spec.rotation.gracePeriod: {spec.rotation.grace_period!r} keeps a rotated-out key "
            f"working longer than namespace {tenant.namespace!r} may (rules granting this "
            f"instance: {', '.join(grant.names)}; the longest grace period they allow: "
            f"{written}). Use a shorter gracePeriod, or ask the platform team to raise "
            "keys.maxGracePeriod in the rule"
        )
        raise PolicyRefusedError(msg)


def user_roles(ref: ConnectionRef, tenant: Tenant, policies: Policies) -> frozenset[str] | None:
    """The roles a User reached through `ref` may have; None on a tenant's own proxy.

    A key with userRef takes its user's role, so the function binds a key
    only to a user whose role (as the proxy answers it) is one of these.
    """
    grant = connect(ref, tenant, policies)
    if grant.tenant_proxy:
        return None
    return frozenset(r for rule in grant.rules for r in rule.spec.users.roles)


def check_role(role: str, tenant: Tenant, grant: Grant) -> None:
    """Refuse a User role the rules granting its instance do not allow."""
    if grant.tenant_proxy:
        return  # the tenant holds that proxy's master key already
    allowed = sorted({r for rule in grant.rules for r in rule.spec.users.roles})
    if role not in allowed:
        msg = (
            f"spec.userRole: role {role!r} is not allowed in namespace {tenant.namespace!r} "
            f"(rules granting this instance: {', '.join(grant.names)}; roles they allow: "
            f"{', '.join(allowed) or 'none'}). A user's keys take its role on the proxy; "
            "use an allowed role, or ask the platform team to list it in the rule's users.roles"
        )
        raise PolicyRefusedError(msg)


def _applying(rules: list[Rule], policies: Policies, tenant: Tenant) -> str:
    if rules:
        return "rules selecting it: " + ", ".join(r.name for r in rules)
    labels = "" if tenant.labels is not None else " (its Namespace object was not found)"
    return f"no rule selects it{labels}; {policies.summary()}"


def _platform_instance(
    ref: ConnectionRef, tenant: Tenant, policies: Policies, rules: list[Rule]
) -> Grant:
    inst = ref.instance_ref
    assert inst is not None  # noqa: S101 - checked by the caller.
    granting = [(r, d) for r in rules if (d := r.grants(inst.namespace, inst.name)) is not None]
    if not granting:
        granted = sorted({f"{ns}/{n}" for r in rules for (ns, n) in r.declared if r.grants(ns, n)})
        msg = (
            f"spec.connectionRef.instanceRef: LiteLLM instance {inst.namespace}/{inst.name} "
            f"is not granted to namespace {tenant.namespace!r} "
            f"({_applying(rules, policies, tenant)}; instances it may use: "
            f"{', '.join(granted) or 'none'}). Use one of those, or ask the platform team "
            "to grant it in a TenancyPolicy rule's instances"
        )
        raise PolicyRefusedError(msg)
    connection = _one_declaration(inst.namespace, inst.name, granting)
    return Grant(connection, tuple(r for r, _ in granting), tenant_proxy=False)


def _own_team(team: str, tenant: Tenant, grants: list[Rule]) -> str:
    bound = sorted({r.spec.teams.bind for r in grants if r.spec.teams.bind})
    if bound:
        msg = (
            f"spec.teamRef: namespace {tenant.namespace!r} is bound to LiteLLM team(s) "
            f"{', '.join(bound)} by {', '.join(r.name for r in grants if r.spec.teams.bind)}, "
            "whose budget its keys must count against; remove spec.teamRef, or ask the "
            "platform team to remove the binding"
        )
        raise PolicyRefusedError(msg)
    return team


def _one_declaration(
    namespace: str, name: str, granting: list[tuple[Rule, Instance]]
) -> Connection:
    connections = {d.connection(): r for r, d in granting}
    if len(connections) > 1:
        policies = sorted({r.policy for r in connections.values()})
        msg = (
            f"spec.connectionRef.instanceRef: LiteLLM instance {namespace}/{name} is declared "
            f"differently by TenancyPolicies {', '.join(repr(p) for p in policies)} (URL or "
            "master-key Secret), so it is not used until the platform team makes the "
            "declarations agree"
        )
        raise PolicyRefusedError(msg)
    return next(iter(connections))


def _team(asked: str | None, tenant: Tenant, grants: list[Rule]) -> str | None:
    bound = sorted({r.spec.teams.bind for r in grants if r.spec.teams.bind})
    allowed = sorted({t for r in grants for t in r.spec.teams.allow} | set(bound))
    if asked is None:
        if len(bound) > 1:
            msg = (
                f"spec.teamID: namespace {tenant.namespace!r} is bound to several LiteLLM "
                f"teams ({', '.join(bound)}) by {', '.join(r.name for r in grants)}; name one "
                "of them in spec.teamID, or ask the platform team to bind one"
            )
            raise PolicyRefusedError(msg)
        return bound[0] if bound else None
    if asked not in allowed:
        msg = (
            f"spec.teamID: LiteLLM team {asked!r} is not allowed in namespace "
            f"{tenant.namespace!r} (rules granting this instance: "
            f"{', '.join(r.name for r in grants)}; teams they allow: "
            f"{', '.join(allowed) or 'none'}). Remove spec.teamID or name an allowed team; "
            "the platform team allows more in the rule's teams.allow"
        )
        raise PolicyRefusedError(msg)
    return asked


def _user(asked: str | None, tenant: Tenant, grants: list[Rule]) -> str | None:
    if asked is None:
        return None
    allowed = sorted({u for r in grants for u in r.spec.users.allow})
    if asked not in allowed:
        msg = (
            f"spec.userID: LiteLLM user {asked!r} is not allowed in namespace "
            f"{tenant.namespace!r} (rules granting this instance: "
            f"{', '.join(r.name for r in grants)}; users they allow: "
            f"{', '.join(allowed) or 'none'}). A key takes its user's role on the proxy, so "
            "user IDs are off unless the platform team lists them in the rule's users.allow"
        )
        raise PolicyRefusedError(msg)
    return asked


def _tenant_proxy(
    ref: ConnectionRef, tenant: Tenant, policies: Policies, rules: list[Rule]
) -> Grant:
    assert ref.url is not None  # noqa: S101 - the model guarantees the explicit form.
    assert ref.master_key_secret_ref is not None  # noqa: S101
    allowing = [r for r in rules if r.spec.tenant_proxies.allow]
    if not allowing:
        msg = (
            f"spec.connectionRef.url: tenant-owned LiteLLM proxies are not allowed in "
            f"namespace {tenant.namespace!r} ({_applying(rules, policies, tenant)}; none "
            "sets tenantProxies.allow). Use instanceRef with an instance granted to the "
            "namespace, or ask the platform team to allow tenant proxies"
        )
        raise PolicyRefusedError(msg)
    secret = ref.master_key_secret_ref
    if secret.namespace is not None and secret.namespace != tenant.namespace:
        msg = (
            f"spec.connectionRef.masterKeySecretRef.namespace: {secret.namespace!r} is not "
            f"the VirtualKey's namespace; a tenant-owned proxy's master key must be in "
            f"namespace {tenant.namespace!r} (by {', '.join(r.name for r in allowing)}). "
            "Remove the namespace, or use instanceRef for a platform instance"
        )
        raise PolicyRefusedError(msg)
    loopback = any(r.spec.tenant_proxies.allow_loopback for r in allowing)
    url = checked_tenant_url(ref.url, allow_loopback=loopback)
    connection = Connection(
        base_url=url,
        master_key=MasterKeyRef(
            name=secret.name,
            namespace=tenant.namespace,
            key=secret.key or "masterkey",
        ),
    )
    return Grant(connection, tuple(allowing), tenant_proxy=True)
