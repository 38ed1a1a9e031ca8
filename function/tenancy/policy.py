"""The platform's tenancy policy, as data: what each tenant namespace may use.

A `TenancyPolicy` (`litellm.fn.crossplane.io/v1beta1`, cluster-scoped, CRD in
`package/policy/`) is written by the platform team; tenants cannot write it.
Every TenancyPolicy in the cluster counts, the way RBAC bindings add up, so a
platform can keep one per tenant in Git. Both the function (through
Crossplane's required resources) and the poller (through the API) read the
same objects, and nothing else: there is no second copy of these rules in
flags or environment variables.

- `TenancyPolicySpec`: the spec, validated on load with pydantic. It declares
  the LiteLLM `instances` the platform runs (their URL and master-key Secret
  are fixed here) and `rules`, each granting the namespaces it selects some
  of those instances, LiteLLM teams and users, and tenant-owned proxies.
- `load_policies(objects)` -> `Policies`: every TenancyPolicy. One that does
  not validate grants nothing, and is named in every refusal, so that a
  typo never widens access and never stops the other policies.
- `Policies.rules_for(tenant)` -> the `Rule`s that select a namespace.

With no TenancyPolicy at all, nothing is granted: the secure default.
`function.tenancy` decides what a VirtualKey may do from these rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from pydantic import model_validator as _model_validator

from function.provenance import MASTER_KEY_USER
from function.redact import redact
from function.tenancy.connection import (
    Connection,
    InstanceRef,
    MasterKeyRef,
    checked_platform_url,
)
from function.validation import (
    DNS_LABEL_PATTERN,
    DnsLabel,
    DnsSubdomain,
    Duration,
    InvalidInputError,
    SecretKey,
    SmallLimit,
    StrictModel,
    memoized_by_json,
    validated,
)

_log = logging.getLogger(__name__)
POLICY_API_VERSION = "litellm.fn.crossplane.io/v1beta1"
POLICY_KIND = "TenancyPolicy"
# The LiteLLM Operator's conventions for an instance named <name>.
DEFAULT_URL = "http://{name}-service.{namespace}.svc.cluster.local:4000"
DEFAULT_SECRET_NAME = "{name}-secrets"  # noqa: S105 - a name pattern, not a secret.
DEFAULT_SECRET_KEY = "masterkey"  # noqa: S105 - a data key's name, not a secret.

# LiteLLM team and user IDs: what they are sent as, never a placeholder.
LiteLLMID = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^{}\s]+$")]
LabelKey = Annotated[
    str, StringConstraints(min_length=1, max_length=317, pattern=r"^[A-Za-z0-9._/-]+$")
]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=r"^[A-Za-z0-9._-]*$")]


class MasterKeySecretRef(StrictModel):
    """Where an instance's master key lives (defaults: the Operator's Secret)."""

    name: DnsSubdomain | None = None
    namespace: DnsLabel | None = None
    key: SecretKey = DEFAULT_SECRET_KEY


class Instance(StrictModel):
    """A LiteLLM instance the platform runs, and the only way to reach it."""

    name: DnsLabel
    namespace: DnsLabel
    url: str | None = None
    master_key_secret_ref: MasterKeySecretRef = Field(
        default_factory=MasterKeySecretRef, alias="masterKeySecretRef"
    )

    @_model_validator(mode="after")
    def _valid_url(self) -> Instance:
        checked_platform_url(self.base_url)
        return self

    @property
    def ref(self) -> tuple[str, str]:
        """(namespace, name), the way tenants name it in instanceRef."""
        return (self.namespace, self.name)

    @property
    def base_url(self) -> str:
        """The declared URL, or the LiteLLM Operator's Service for this instance."""
        url = self.url or DEFAULT_URL.format(name=self.name, namespace=self.namespace)
        return url.rstrip("/")

    def connection(self) -> Connection:
        """The URL and master-key Secret of this instance."""
        secret = self.master_key_secret_ref
        return Connection(
            base_url=self.base_url,
            master_key=MasterKeyRef(
                name=secret.name or DEFAULT_SECRET_NAME.format(name=self.name),
                namespace=secret.namespace or self.namespace,
                key=secret.key,
            ),
        )


class SelectorRequirement(StrictModel):
    """One matchExpressions entry of a Kubernetes label selector."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] = Field(default_factory=list, max_length=64)

    @_model_validator(mode="after")
    def _values_fit(self) -> SelectorRequirement:
        needs_values = self.operator in ("In", "NotIn")
        if needs_values != bool(self.values):
            msg = f"operator {self.operator} {'needs' if needs_values else 'takes no'} values"
            raise ValueError(msg)
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether the labels satisfy this requirement (Kubernetes semantics)."""
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        inside = present and labels[self.key] in self.values
        return inside if self.operator == "In" else not inside


class LabelSelector(StrictModel):
    """A Kubernetes label selector; `{}` selects every namespace."""

    match_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, alias="matchLabels", max_length=64
    )
    match_expressions: list[SelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions", max_length=64
    )

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a namespace with these labels is selected."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )


class Namespaces(StrictModel):
    """The namespaces a rule applies to: named ones, and those its selector picks."""

    names: list[DnsLabel] = Field(default_factory=list, max_length=1000)
    selector: LabelSelector | None = None

    @_model_validator(mode="after")
    def _selects_something(self) -> Namespaces:
        if not self.names and self.selector is None:
            msg = "name namespaces in names, or select them with selector"
            raise ValueError(msg)
        return self


class Teams(StrictModel):
    """LiteLLM teams the keys of a namespace join."""

    # Set on every key that names no team of its own.
    bind: LiteLLMID | None = None
    # Other team IDs a VirtualKey may name in spec.teamID.
    allow: list[LiteLLMID] = Field(default_factory=list, max_length=256)


# The roles LiteLLM gives users (and, through user_id, their keys).
UserRole = Literal["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"]
# LiteLLM lets an internal_user's key call /key/generate and mint keys of its
# own choosing (no team, no budget, any metadata); internal_user_viewer's
# cannot (401). So a role that can mint is granted only where a rule lists it.
DEFAULT_USER_ROLES: tuple[UserRole, ...] = ("internal_user_viewer",)


class Users(StrictModel):
    """LiteLLM users: IDs a VirtualKey may name, and roles a User may get."""

    # Raw user IDs a VirtualKey may name in spec.userID; none by default.
    allow: list[LiteLLMID] = Field(default_factory=list, max_length=256)
    # Roles a User of the namespace may have; a key takes its user's role.
    roles: list[UserRole] = Field(default_factory=lambda: list(DEFAULT_USER_ROLES), max_length=4)

    @_model_validator(mode="after")
    def _no_master_key_user(self) -> Users:
        if MASTER_KEY_USER in self.allow:
            msg = (
                f"allow must not list {MASTER_KEY_USER!r}, LiteLLM's master-key user: a key "
                "bound to it would be a proxy admin"
            )
            raise ValueError(msg)
        return self


class TenantProxies(StrictModel):
    """Whether a namespace may bring its own LiteLLM proxy (connectionRef.url)."""

    allow: bool = False
    # Loopback addresses (127.0.0.0/8, ::1, localhost) are refused unless set.
    allow_loopback: bool = Field(default=False, alias="allowLoopback")
    # Each tenant proxy (URL and master-key Secret) is one more instance the
    # poller reads every cycle: a namespace may not make it read unboundedly many.
    max_instances: SmallLimit = Field(default=2, alias="maxInstances")


class Keys(StrictModel):
    """What the keys of a namespace may do to keys the function did not make."""

    # A key already on the proxy with a VirtualKey's alias, made by another
    # VirtualKey or outside the function, is replaced (deleted, its spend
    # carried over) instead of refused. Off: such a key is never touched.
    replace_foreign_keys: bool = Field(default=False, alias="replaceForeignKeys")
    # The shortest time between two rotations of a key (spec.rotation): each one
    # makes and deletes a key on the proxy, so tenants may not churn them.
    min_rotation_interval: Duration = Field(default="1h", alias="minRotationInterval")
    # The longest grace period a rotated-out key may keep working (spec.rotation):
    # until then it is a second live key of the same budget.
    max_grace_period: Duration = Field(default="24h", alias="maxGracePeriod")


RuleName = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]


class RuleSpec(StrictModel):
    """One rule: the namespaces it selects and what it grants them."""

    name: RuleName
    namespaces: Namespaces
    instances: list[InstanceRef] = Field(default_factory=list, max_length=256)
    teams: Teams = Field(default_factory=Teams)
    users: Users = Field(default_factory=Users)
    keys: Keys = Field(default_factory=Keys)
    tenant_proxies: TenantProxies = Field(default_factory=TenantProxies, alias="tenantProxies")


class TenancyPolicySpec(StrictModel):
    """The spec of a TenancyPolicy."""

    instances: list[Instance] = Field(default_factory=list, max_length=256)
    rules: list[RuleSpec] = Field(default_factory=list, max_length=1000)

    @_model_validator(mode="after")
    def _consistent(self) -> TenancyPolicySpec:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            msg = "rules: two rules have the same name; names must be unique"
            raise ValueError(msg)
        declared = [i.ref for i in self.instances]
        if len(set(declared)) != len(declared):
            msg = "instances: an instance is declared twice; declare each once"
            raise ValueError(msg)
        for rule in self.rules:
            for ref in rule.instances:
                if (ref.namespace, ref.name) not in declared:
                    msg = (
                        f"rules[{rule.name}].instances: {ref.namespace}/{ref.name} is not "
                        "declared in this policy's spec.instances; declare its URL and "
                        "master-key Secret there"
                    )
                    raise ValueError(msg)
        return self


@dataclass(frozen=True)
class Tenant:
    """A tenant namespace and its labels (None when its Namespace was not found)."""

    namespace: str
    labels: dict[str, str] | None = None


@dataclass(frozen=True)
class Rule:
    """A rule together with the policy it belongs to, for messages."""

    policy: str
    spec: RuleSpec
    declared: dict[tuple[str, str], Instance]

    @property
    def name(self) -> str:
        """How refusals name it: `rule <name> of TenancyPolicy <policy>`."""
        return f"rule {self.spec.name!r} of TenancyPolicy {self.policy!r}"

    def selects(self, tenant: Tenant) -> bool:
        """Whether this rule applies to the tenant's namespace."""
        spec = self.spec.namespaces
        if tenant.namespace in spec.names:
            return True
        return spec.selector is not None and spec.selector.matches(tenant.labels or {})

    def grants(self, namespace: str, name: str) -> Instance | None:
        """The declaration of an instance this rule grants, or None."""
        if any(r.namespace == namespace and r.name == name for r in self.spec.instances):
            return self.declared[(namespace, name)]
        return None


@dataclass(frozen=True)
class Broken:
    """A TenancyPolicy that does not validate: it grants nothing."""

    policy: str
    error: str


@dataclass(frozen=True)
class Policies:
    """Every TenancyPolicy in the cluster."""

    rules: tuple[Rule, ...] = ()
    broken: tuple[Broken, ...] = ()
    names: tuple[str, ...] = field(default=())

    def rules_for(self, tenant: Tenant) -> list[Rule]:
        """The rules that select this tenant's namespace, in policy and rule order."""
        return [r for r in self.rules if r.selects(tenant)]

    def summary(self) -> str:
        """What a tenant may learn when no rule selects its namespace.

        Only counts: the names of other tenants' policies and a broken
        policy's error (which may quote its URLs) are the platform's business,
        which finds them in the function's log (`load_policies` logs each).
        """
        if not self.names:
            return (
                "there is no TenancyPolicy in the cluster, so nothing is granted; the "
                "platform team grants namespaces access with one"
            )
        if self.broken:
            return (
                f"{len(self.broken)} TenancyPolicy(ies) could not be read and grant nothing; "
                "the platform team finds which, and why, in the function's log"
            )
        return "ask the platform team to grant the namespace in a TenancyPolicy rule"


@memoized_by_json(max_bytes=16 * 1024 * 1024)
def load_policies(objects: Any) -> Policies:
    """Every TenancyPolicy, validated; invalid ones are kept as `Broken`."""
    rules: list[Rule] = []
    broken: list[Broken] = []
    names: list[str] = []
    if not isinstance(objects, list):
        objects = []
    for obj in sorted(objects, key=_policy_name):
        name = _policy_name(obj)
        names.append(name)
        try:
            spec = parse_policy_spec(obj.get("spec") if isinstance(obj, dict) else None)
        except InvalidInputError as e:
            broken.append(Broken(name, redact(e, 400)))
            _log.warning(
                "TenancyPolicy %s is invalid and grants nothing: %s", name, broken[-1].error
            )
            continue
        declared = {i.ref: i for i in spec.instances}
        rules.extend(Rule(name, r, declared) for r in spec.rules)
    return Policies(tuple(rules), tuple(broken), tuple(names))


def _policy_name(obj: Any) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return redact(name, 253) if isinstance(name, str) and name else "(unnamed)"


def parse_policy_spec(spec: Any) -> TenancyPolicySpec:
    """Validate a TenancyPolicy's spec, or raise InvalidInputError naming each bad field."""
    return validated(
        TenancyPolicySpec, spec, "spec", not_object="spec: is missing or not an object"
    )
