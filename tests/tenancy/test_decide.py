"""What a VirtualKey may use, decided by the platform's TenancyPolicies (`function.tenancy.decide`).

Two tables of named cases:

- the five attacks of issue 7 and their neighbours, over the function's real
  gRPC server: each is a Fatal result naming the field and the rule, and
  nothing is composed (so nothing is sent anywhere);
- what the rules grant (`authorize`, pure).

The poller applies the same rules (tests/poller/test_tenancy.py) and the
attacks that involve LiteLLM run against the real proxy
(tests/e2e/test_tenancy_e2e.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.keys.spec import parse_spec
from function.tenancy.decide import PolicyRefusedError, authorize
from function.tenancy.policy import Tenant, load_policies
from tests.conftest import load_example
from tests.grpc_harness import FunctionServer, make_request, required_resources
from tests.tenancy.policies import (
    SHIPPED,
    TEAM_B,
    explicit,
    in_namespace,
    instance,
    policy,
    rule,
    seed,
)

MASTER_KEY_SECRET = "{{ litellm-example-secrets:litellm:masterkey }}"

# --- the attacks, through the function ----------------------------------------------------


@dataclass
class Attack:
    xr: dict[str, Any]
    fragments: list[str]
    policies: list[dict[str, Any]] = field(default_factory=lambda: [SHIPPED])
    labels: dict[str, str] | None = None


ATTACKS: dict[str, Attack] = {
    "1 master key to a tenant URL, from a namespace without tenant proxies": Attack(
        explicit("http://attacker.example.com", "litellm"),
        [
            "spec.connectionRef.url",
            "tenant-owned LiteLLM proxies are not allowed in namespace 'team-a'",
            "rule 'team-a' of TenancyPolicy 'litellm-example'",
        ],
    ),
    "1 master key to a tenant URL, where tenant proxies are allowed": Attack(
        in_namespace(explicit("http://attacker.example.com", "litellm"), "team-b"),
        [
            "spec.connectionRef.masterKeySecretRef.namespace",
            "'litellm' is not the VirtualKey's namespace",
            "rule 'team-b-own-proxy' of TenancyPolicy 'litellm-example'",
        ],
    ),
    "1 the platform's instance URL with its master key, spelled out": Attack(
        explicit("http://litellm-example-service.litellm.svc.cluster.local:4000", "litellm"),
        ["spec.connectionRef.url", "not allowed in namespace 'team-a'"],
    ),
    "2 proxy admin through the master key's user": Attack(
        seed(userID="default_user_id"),
        [
            "spec.userID",
            "LiteLLM user 'default_user_id' is not allowed in namespace 'team-a'",
            "rule 'team-a' of TenancyPolicy 'litellm-example'",
            "users they allow: none",
        ],
    ),
    "2 proxy admin through another user": Attack(
        seed(userID="admin@example.com"),
        ["spec.userID", "'admin@example.com' is not allowed", "users.allow"],
    ),
    "2 a user another namespace is allowed": Attack(
        seed(userID="svc-batch"),
        ["spec.userID", "'svc-batch' is not allowed in namespace 'team-a'"],
        [SHIPPED, TEAM_B],
    ),
    "3 another tenant's team": Attack(
        seed(teamID="team-b-id"),
        [
            "spec.teamID",
            "LiteLLM team 'team-b-id' is not allowed in namespace 'team-a'",
            "teams they allow: none",
        ],
        [SHIPPED, TEAM_B],
    ),
    "3 escaping the bound team": Attack(
        in_namespace(
            seed(teamID="other", connectionRef={"instanceRef": instance("litellm-b", "litellm-b")}),
            "team-b",
        ),
        ["spec.teamID", "'other' is not allowed", "shared-research, team-b-id"],
        [SHIPPED, TEAM_B],
    ),
    "4 another tenant's instance": Attack(
        seed(connectionRef={"instanceRef": instance("litellm-b", "litellm-b")}),
        [
            "spec.connectionRef.instanceRef",
            "LiteLLM instance litellm-b/litellm-b is not granted to namespace 'team-a'",
            "instances it may use: litellm/litellm-example",
        ],
        [SHIPPED, TEAM_B],
    ),
    "4 an instance no policy declares": Attack(
        seed(connectionRef={"instanceRef": instance("anything", "kube-system")}),
        ["spec.connectionRef.instanceRef", "kube-system/anything is not granted"],
    ),
    "4 nothing granted without any policy": Attack(
        seed(),
        ["spec.connectionRef.instanceRef", "there is no TenancyPolicy in the cluster"],
        [],
    ),
    "a namespace no rule selects": Attack(
        in_namespace(seed(), "team-c"),
        ["not granted to namespace 'team-c'", "no rule selects it"],
    ),
    "a broken policy grants nothing and is counted, not named": Attack(
        seed(),
        ["not granted", "1 TenancyPolicy(ies) could not be read and grant nothing"],
        [policy("litellm-example", rules=[rule("team-a", ["team-a"], users={"allow": 5})])],
    ),
    "two policies declare one instance differently": Attack(
        seed(),
        ["declared differently by TenancyPolicies 'litellm-example', 'moved'"],
        [
            SHIPPED,
            policy(
                "moved",
                instances=[instance(url="http://elsewhere:4000")],
                rules=[rule("team-a-too", ["team-a"], instances=[instance()])],
            ),
        ],
    ),
}


def fatal_of(rsp: fnv1.RunFunctionResponse) -> str:
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert len(fatal) == 1, [r.message for r in rsp.results]
    assert len(rsp.desired.resources) == 0, "nothing may be composed on a refusal"
    return str(fatal[0])


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_refused_with_the_field_and_the_rule(
    function_server: FunctionServer, name: str
) -> None:
    attack = ATTACKS[name]
    required = required_resources(attack.xr, attack.policies, attack.labels)
    message = fatal_of(function_server.run(make_request(attack.xr, {}, None, "", required)))
    for fragment in attack.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert MASTER_KEY_SECRET not in message


DISCLOSURES = {
    "another tenant's policy is not named to a namespace no rule selects": (
        in_namespace(seed(), "team-c"),
        [SHIPPED, TEAM_B],
        ["TenancyPolicy 'litellm-example'", "team-b", "litellm-b"],
    ),
    "a broken policy's name and error (its URL) stay out of a refusal": (
        seed(),
        [
            policy(
                "secret-plans",
                instances=[instance(url="http://internal-billing.corp:4000")],
                rules=[rule("team-a", ["team-a"], users={"allow": 5})],
            )
        ],
        ["secret-plans", "internal-billing"],
    ),
}


@pytest.mark.parametrize("name", sorted(DISCLOSURES))
def test_refusals_name_only_rules_that_apply_to_the_namespace(
    function_server: FunctionServer, name: str
) -> None:
    xr, policies, hidden = DISCLOSURES[name]
    message = fatal_of(
        function_server.run(make_request(xr, {}, None, "", required_resources(xr, policies)))
    )
    for fragment in hidden:
        assert fragment not in message, f"{fragment!r} disclosed in {message!r}"


def test_first_call_asks_for_the_policies_and_the_namespace(
    function_server: FunctionServer,
) -> None:
    rsp = function_server.run(make_request(seed(), {}, None, "", {}))
    assert not rsp.results
    assert len(rsp.desired.resources) == 0
    wanted = rsp.requirements.resources
    assert wanted["tenancy-policies"].kind == "TenancyPolicy"
    assert wanted["tenancy-policies"].WhichOneof("match") == "match_labels"
    assert dict(wanted["tenancy-policies"].match_labels.labels) == {}
    assert (wanted["tenant-namespace"].kind, wanted["tenant-namespace"].match_name) == (
        "Namespace",
        "team-a",
    )


def test_legacy_claim_asks_for_the_claims_namespace(function_server: FunctionServer) -> None:
    from tests.fixtures import legacy_xr  # noqa: PLC0415 - one test needs it

    rsp = function_server.run(make_request(legacy_xr(), {}, None, "", {}))
    assert rsp.requirements.resources["tenant-namespace"].match_name == "team-a"


# --- what the rules grant (pure) -------------------------------------------------------------


@dataclass
class Grant:
    spec: dict[str, Any]
    policies: list[dict[str, Any]]
    namespace: str = "team-a"
    labels: dict[str, str] | None = None
    url: str = "http://litellm-example-service.litellm.svc.cluster.local:4000"
    secret: tuple[str, str, str] = ("litellm", "litellm-example-secrets", "masterkey")
    team: str | None = None
    user: str | None = None


SEED_SPEC = load_example("virtualkey/virtualkey.yaml")["spec"]
LABELLED = policy(
    "by-label",
    instances=[instance()],
    rules=[
        rule(
            "tenants",
            selector={
                "matchLabels": {"litellm.ai/tenant": "true"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["gold", "silver"]},
                    {"key": "frozen", "operator": "DoesNotExist"},
                ],
            },
            instances=[instance()],
        )
    ],
)
GRANTS: dict[str, Grant] = {
    "the seed, by the shipped policy": Grant(SEED_SPEC, [SHIPPED]),
    "a declared URL and Secret": Grant(
        SEED_SPEC,
        [
            policy(
                "custom",
                instances=[
                    instance(
                        url="https://llm.internal:8443/",
                        masterKeySecretRef={"name": "mk", "namespace": "vault", "key": "k"},
                    )
                ],
                rules=[rule("team-a", ["team-a"], instances=[instance()])],
            )
        ],
        url="https://llm.internal:8443",
        secret=("vault", "mk", "k"),
    ),
    "selected by labels": Grant(
        SEED_SPEC, [LABELLED], labels={"litellm.ai/tenant": "true", "tier": "gold"}
    ),
    "a bound team is set on every key": Grant(
        {**SEED_SPEC, "connectionRef": {"instanceRef": instance("litellm-b", "litellm-b")}},
        [TEAM_B],
        namespace="team-b",
        url="http://litellm-b-service.litellm-b.svc.cluster.local:4000",
        secret=("litellm-b", "litellm-b-secrets", "masterkey"),
        team="team-b-id",
    ),
    "an allowed team and user": Grant(
        {
            **SEED_SPEC,
            "teamID": "shared-research",
            "userID": "svc-batch",
            "connectionRef": {"instanceRef": instance("litellm-b", "litellm-b")},
        },
        [TEAM_B],
        namespace="team-b",
        url="http://litellm-b-service.litellm-b.svc.cluster.local:4000",
        secret=("litellm-b", "litellm-b-secrets", "masterkey"),
        team="shared-research",
        user="svc-batch",
    ),
    "a tenant proxy with its own team and user": Grant(
        {
            **SEED_SPEC,
            "teamID": "anything",
            "userID": "anyone",
            "connectionRef": {
                "url": "http://proxy.team-b:4000/",
                "masterKeySecretRef": {"name": "m"},
            },
        },
        [SHIPPED],
        namespace="team-b",
        url="http://proxy.team-b:4000",
        secret=("team-b", "m", "masterkey"),
        team="anything",
        user="anyone",
    ),
    "one broken policy leaves the others working": Grant(
        SEED_SPEC, [SHIPPED, policy("broken", rules="not a list")]
    ),
}


@pytest.mark.parametrize("name", sorted(GRANTS))
def test_grant(name: str) -> None:
    case = GRANTS[name]
    got = authorize(
        parse_spec(case.spec),
        Tenant(case.namespace, case.labels),
        load_policies(case.policies),
    )
    ref = got.connection.master_key
    assert got.connection.base_url == case.url
    assert (ref.namespace, ref.name, ref.key) == case.secret
    assert (got.team_id, got.user_id) == (case.team, case.user)
    assert got.rules


@pytest.mark.parametrize(
    "labels",
    [
        None,
        {},
        {"litellm.ai/tenant": "true"},
        {"litellm.ai/tenant": "true", "tier": "bronze"},
        {"litellm.ai/tenant": "true", "tier": "gold", "frozen": ""},
        {"litellm.ai/tenant": "false", "tier": "gold"},
    ],
)
def test_selector_refuses_namespaces_it_does_not_select(labels: dict[str, str] | None) -> None:
    with pytest.raises(PolicyRefusedError, match="no rule selects it"):
        authorize(parse_spec(SEED_SPEC), Tenant("team-a", labels), load_policies([LABELLED]))


def test_two_bound_teams_make_the_tenant_choose() -> None:
    second = copy.deepcopy(TEAM_B)
    second["metadata"]["name"] = "team-b-again"
    second["spec"]["rules"][0]["teams"] = {"bind": "another"}
    spec = parse_spec(
        {**SEED_SPEC, "connectionRef": {"instanceRef": instance("litellm-b", "litellm-b")}}
    )
    with pytest.raises(PolicyRefusedError, match=r"several LiteLLM teams \(another, team-b-id\)"):
        authorize(spec, Tenant("team-b"), load_policies([TEAM_B, second]))
