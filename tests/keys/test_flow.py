"""Where a VirtualKey's key comes from: a lost Secret, an alias already held, provenance.

`function.keys.flow` chooses the key and composes the steady phase: a key that
is new because its Secret was lost starts with the old key's spend, and one
whose alias another key holds looks into who holds it (`function.keys.holders`)
before anything is replaced. The rotation's phases are in test_rotation.py; the
stories run against the real proxy in tests/e2e/test_rotation_e2e.py and on the
real control plane in tests/cluster/.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from function.tenancy.policy import load_policies
from tests.conftest import load_example
from tests.fixtures import FIXED_KEY, observed_request, observed_secret, request_resource_name
from tests.keys.runs import STEADY, TOKEN, body, info, payload, run, secret_key, xr

# --- carried spend -------------------------------------------------------------------------


def test_a_lost_secret_carries_the_old_keys_spend() -> None:
    observed = {request_resource_name(): info(FIXED_KEY, spend=4.25)}
    composed = run(xr(), observed)
    new_token = composed.status["tokenHash"]
    assert new_token != TOKEN
    name = f"request-{new_token[:10]}"
    assert payload(composed, name)["createOnly"]["spend"] == 4.25
    # The next run keeps it, from the new key's own Request, though the old one is gone.
    kept = copy.deepcopy(body(composed, name))
    kept["status"] = {}
    again = run(xr(), {"key": observed_secret(secret_key(composed, "key")), name: kept})
    assert payload(again, name)["createOnly"]["spend"] == 4.25


# --- an alias already held: recovery and refusal ---------------------------------------------

HOLDER = "ab" * 32
CONFLICT = {
    "key": observed_secret(),
    request_resource_name(): observed_request(
        code=400, path="/key/generate", body={"error": {"message": "key_alias already exists"}}
    ),
}


def stamp(namespace: str, name: str = "example-service") -> dict[str, str]:
    return {"auth.litellm.ai/namespace": namespace, "auth.litellm.ai/virtualkey": name}


MASTER = {"created_by": "default_user_id", "updated_by": "default_user_id"}
# Who made a key holding the alias, as LiteLLM's listing shows it.
OWNERS = {
    "this": {"metadata": stamp("team-a"), **MASTER},
    "sibling": {"metadata": stamp("team-a", "other-service"), **MASTER},
    "other": {"metadata": stamp("team-b"), **MASTER},
    "unknown": {"metadata": {}, **MASTER},
    # A user whose role may call /key/generate minted it, naming this VirtualKey.
    "minted": {"metadata": stamp("team-a"), "created_by": "team-a.mallory"},
    # The master key made it, but a user's own key changed it since.
    "rewritten": {
        "metadata": stamp("team-a"),
        "created_by": "default_user_id",
        "updated_by": "team-a.mallory",
    },
}


def checked(*keys: dict[str, Any], code: int = 200) -> dict[str, Any]:
    """The alias check, after provider-http listed `keys` with the alias."""
    return {
        **CONFLICT,
        "alias-check": observed_request(code=code, path="/key/list", body={"keys": list(keys)}),
    }


def held(owner: str, token: str = HOLDER, spend: float = 6.5, **extra: Any) -> dict[str, Any]:
    return {
        "token": token,
        "key_alias": "example-service",
        "spend": spend,
        **OWNERS[owner],
        **extra,
    }


def conflicting(**status: Any) -> dict[str, Any]:
    return xr(**status)


def test_an_alias_conflict_is_looked_into_with_a_request_that_only_observes() -> None:
    composed = run(conflicting(), CONFLICT)
    assert composed.state.reason == "AliasConflict"
    check = body(composed, "alias-check")
    assert check["spec"]["managementPolicies"] == ["Observe"]
    (mapping,) = check["spec"]["forProvider"]["mappings"]
    assert mapping["action"] == "OBSERVE"
    assert "/key/list?return_full_object=true&key_alias=" in mapping["url"]
    assert json.loads(check["spec"]["forProvider"]["payload"]["body"]) == {
        "alias": "example-service"
    }
    # Once the key exists, the check is no longer composed (dropping it deletes nothing).
    assert "alias-check" not in run(xr(), STEADY).resources


def test_a_key_this_virtualkey_made_before_is_replaced_with_its_spend() -> None:
    composed = run(conflicting(), checked(held("this")))
    assert composed.state.reason == "ReplacingOldKey"
    reaper = body(composed, f"stray-{HOLDER[:10]}")
    assert json.loads(reaper["spec"]["forProvider"]["payload"]["body"]) == {"token": HOLDER}
    assert payload(composed, request_resource_name())["createOnly"]["spend"] == 6.5
    # The reaper only observes until its own answer shows the key is this VirtualKey's.
    assert reaper["spec"]["managementPolicies"] == ["Observe"]


@pytest.mark.parametrize("owner", ["other", "unknown", "sibling", "minted", "rewritten"])
def test_a_foreign_key_is_never_touched_without_the_platforms_opt_in(owner: str) -> None:
    composed = run(conflicting(), checked(held(owner)))
    assert composed.state.reason == "AliasConflict"
    message = composed.state.message
    assert "'example-service'" in message
    assert ("another namespace" in message) is (owner == "other")
    assert '{"key_aliases": ["example-service"]}' in message
    assert "keys.replaceForeignKeys: true" in message
    assert not [n for n in composed.resources if n.startswith("stray-")]


@pytest.mark.parametrize(
    ("owner", "replaced"),
    [
        pytest.param("unknown", True, id="a-key-made-outside-the-function"),
        pytest.param("sibling", True, id="a-key-of-another-virtualkey-of-this-namespace"),
        pytest.param("other", False, id="never-a-key-made-for-another-namespace"),
        pytest.param("minted", True, id="a-squat-with-forged-provenance-counts-as-none"),
    ],
)
def test_the_policys_opt_in_replaces_only_keys_of_no_one_or_of_this_namespace(
    owner: str, replaced: bool
) -> None:
    policy = copy.deepcopy(load_example("install/tenancy-policy.yaml"))
    policy["spec"]["rules"][0]["keys"] = {"replaceForeignKeys": True}
    composed = run(
        conflicting(), checked(held(owner, spend=9.99)), policies=load_policies([policy])
    )
    assert (composed.state.reason == "ReplacingOldKey") is replaced
    assert (f"stray-{HOLDER[:10]}" in composed.resources) is replaced
    # A squatter chose that spend: it is not this VirtualKey's, so it is not carried over.
    assert "spend" not in payload(composed, request_resource_name())["createOnly"]


@pytest.mark.parametrize(
    ("why", "observed"),
    [
        ("no answer yet", CONFLICT),
        ("the proxy refused the listing", checked(held("this"), code=401)),
        ("another alias (a proxy ignoring the filter)", checked(held("this", key_alias="x"))),
        ("a spend that cannot be read", checked(held("this", spend="lots"))),  # type: ignore[arg-type]
        ("our own key", checked(held("this", token=TOKEN))),
    ],
)
def test_nothing_is_replaced_on_an_answer_that_does_not_prove_it(
    why: str, observed: dict[str, Any]
) -> None:
    composed = run(conflicting(), observed)
    assert not [n for n in composed.resources if n.startswith("stray-")], why
    assert composed.state.reason == "AliasConflict", why


def test_a_forged_status_points_the_function_at_no_key() -> None:
    # Crossplane's generated edit roles include status: the status is no evidence.
    forged = conflicting(
        aliasHolder={"owner": "this", "tokenHash": HOLDER, "spend": "0"},
        strayTokens=[HOLDER],
        reapedTokens=[],
        carry={"tokenHash": TOKEN, "spend": "0"},
    )
    composed = run(forged, CONFLICT)
    assert not [n for n in composed.resources if n.startswith("stray-")]
    # Nor does it lower the spend a replacing key starts with.
    composed = run(forged, checked(held("this")))
    assert payload(composed, request_resource_name())["createOnly"]["spend"] == 6.5


def test_every_key_carries_its_provenance() -> None:
    fields = payload(run(xr(), STEADY), request_resource_name())["fields"]
    assert fields["metadata"] == {
        "auth.litellm.ai/namespace": "team-a",
        "auth.litellm.ai/virtualkey": "example-service",
        "auth.litellm.ai/policy": "litellm-example/team-a",
    }
