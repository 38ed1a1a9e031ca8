"""Rotation (issue 11), phase by phase: `function.keys.rotation` and `.rotating`.

`compose` is pure and takes the time, so every phase is one call with the
observed state Crossplane would send (tests/keys/runs.py). Carried spend and
recovery after a reinstall are in test_flow.py. The stories run against the
real proxy in tests/e2e/test_rotation_e2e.py and on the real control plane in
tests/cluster/.
"""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import fn, units
from function.keys import flow as keyflow
from function.keys import rotation
from function.keys.secrets import token_of
from function.keys.spec import Rotation
from function.tenancy.policy import load_policies
from function.validation import KEY_ALIAS_PATTERN, InvalidInputError
from tests.conftest import load_example
from tests.fixtures import FIXED_KEY, observed_request, observed_secret, request_resource_name
from tests.grpc_harness import FunctionServer, make_request
from tests.keys.runs import (
    NOW,
    STEADY,
    TOKEN,
    body,
    info,
    notes,
    payload,
    run,
    secret_key,
    xr,
)

RETIRED = f"example-service.rotated-{TOKEN[:8]}"
NEXT_KEY = "sk-" + "NextKey0123456789abcdefghijklmnopqrstuvwxyz"
NEXT = token_of(NEXT_KEY)


# --- pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spent", "max_budget", "grace", "spend", "cap"),
    [
        ("2", None, None, "2", None),  # no budget: the spend is carried, nothing capped
        ("2", "10", None, "3", "3"),  # a tenth of maxBudget for the grace period
        ("2", "10", "0.5", "2.5", "2.5"),  # the platform's own allowance
        ("9.5", "10", None, "10", "10"),  # never more than what is left
        ("12", "10", None, "12", "12"),  # already over: nothing more
        ("2", "10", "0", "2", "2"),  # no allowance: the old key stops at once
    ],
)
def test_carry_keeps_both_keys_within_max_budget(
    spent: str, max_budget: str | None, grace: str | None, spend: str, cap: str | None
) -> None:
    found = rotation.carry(Decimal(spent), max_budget, grace)
    assert found.spend == Decimal(spend)
    assert found.old_key_budget == (None if cap is None else Decimal(cap))
    if max_budget is not None and Decimal(spent) <= Decimal(max_budget):
        # What the old key may still spend plus what the new one may: maxBudget at most.
        assert (found.old_key_budget or 0) - Decimal(spent) + Decimal(max_budget) - found.spend <= (
            Decimal(max_budget) - Decimal(spent)
        )


@pytest.mark.parametrize(
    "alias", ["example-service", "a", "x" * 255, "team/a@b.c_d-e", "trailing-", "dots..."]
)
def test_a_retired_alias_is_a_valid_alias_and_differs(alias: str) -> None:
    retired = rotation.retired_alias(alias, TOKEN)
    assert retired != alias
    assert len(retired) <= 255
    assert re.fullmatch(KEY_ALIAS_PATTERN, retired), retired
    assert ".." not in retired


@pytest.mark.parametrize(
    ("spec", "handled", "born", "why"),
    [
        ({"every": "30d"}, None, datetime(2026, 11, 1, tzinfo=UTC), "scheduled"),
        ({"every": "60d"}, None, datetime(2026, 11, 1, tzinfo=UTC), None),
        ({"trigger": 1}, 1, NOW, None),  # the trigger the key was made for
        ({"trigger": 2}, 1, NOW, "requested"),
        ({"trigger": 0}, None, NOW, "requested"),  # a trigger the key was not made for
        ({"every": "1h"}, None, NOW, None),
    ],
)
def test_due(spec: dict[str, Any], handled: int | None, born: datetime, why: str) -> None:
    assert rotation.due(Rotation.model_validate(spec), handled, born, NOW) == why


# --- the phases of a rotation --------------------------------------------------------------


def test_a_due_rotation_starts_with_the_new_key_in_its_own_secret() -> None:
    composed = run(xr({"every": "30d"}), STEADY)
    new_key = secret_key(composed, "next-key")
    assert new_key != FIXED_KEY
    assert body(composed, "next-key")["metadata"]["name"] == "example-service-litellm-key-next"
    assert secret_key(composed, "key") == FIXED_KEY  # clients keep the working key
    old = payload(composed, request_resource_name())
    assert old["fields"]["key_alias"] == RETIRED
    assert old["fields"]["max_budget"] == 3.0  # spend 2 + a tenth of 10
    # A budget reset would hand the old key its cap again: it loses the period.
    assert old["fields"]["budget_duration"] is None
    # The old key's Request remembers which key replaces it (not the status).
    assert notes(composed, request_resource_name()) == {
        keyflow.NEXT_KEY: token_of(new_key),
        keyflow.ROTATION: "scheduled",
    }
    # The new key's Request waits until LiteLLM has moved the old key's alias.
    assert request_resource_name(new_key) not in composed.resources
    pending = composed.status["rotation"]["pending"]
    assert pending["tokenHash"] == token_of(new_key)
    assert pending["reason"] == "scheduled"
    assert (pending["carriedSpend"], pending["oldKeyBudget"]) == ("3", "3")
    assert composed.state.ready
    assert composed.state.reason == "Rotating"
    assert new_key not in json.dumps(composed.status)


ROTATING_NOTES = {keyflow.NEXT_KEY: NEXT, keyflow.ROTATION: "scheduled"}


def rotating(alias: str = "example-service", **more: Any) -> dict[str, Any]:
    """A rotation under way: the old key's Request names the new key; it waits in its Secret."""
    old = info(FIXED_KEY, alias=alias, notes=ROTATING_NOTES)
    if alias == RETIRED:  # the cap was applied when the rotation started
        old["spec"]["forProvider"]["payload"]["body"] = json.dumps(
            {"token": TOKEN, "fields": {"key_alias": RETIRED, "max_budget": 3.0}}
        )
    return {
        "key": observed_secret(),
        "next-key": observed_secret(NEXT_KEY, "example-service-litellm-key-next"),
        request_resource_name(): old,
        **more,
    }


def test_the_new_key_is_created_once_the_old_alias_moved() -> None:
    composed = run(xr({"every": "30d"}), rotating(RETIRED))
    new = payload(composed, request_resource_name(NEXT_KEY))
    assert new["fields"]["key_alias"] == "example-service"
    assert new["createOnly"]["spend"] == 3.0
    create = body(composed, request_resource_name(NEXT_KEY))["spec"]["forProvider"]["mappings"][0]
    assert "example-service-litellm-key-next:team-a:key" in create["body"]
    assert notes(composed, request_resource_name(NEXT_KEY)) == {keyflow.ROTATION: "scheduled"}
    assert secret_key(composed, "key") == FIXED_KEY
    assert composed.status["tokenHash"] == TOKEN


def test_before_the_alias_moved_no_new_key_is_created() -> None:
    composed = run(xr({"every": "30d"}), rotating())
    assert request_resource_name(NEXT_KEY) not in composed.resources
    assert payload(composed, request_resource_name())["fields"]["key_alias"] == RETIRED
    assert secret_key(composed, "next-key") == NEXT_KEY


def test_once_the_new_key_exists_the_secret_switches_and_the_old_key_retires() -> None:
    observed = rotating(RETIRED, **{request_resource_name(NEXT_KEY): info(NEXT_KEY, spend=3.0)})
    composed = run(xr({"every": "30d", "gracePeriod": "2h"}), observed)
    assert secret_key(composed, "key") == NEXT_KEY
    assert secret_key(composed, "next-key") == NEXT_KEY  # dropped once the switch is observed
    old = body(composed, request_resource_name())
    assert old["metadata"]["annotations"][rotation.RETIRE_AT] == "2026-12-05T14:00:00Z"
    old_payload = payload(composed, request_resource_name())
    assert old_payload["fields"]["key_alias"] == RETIRED
    # It also expires on the proxy then, should its REMOVE never run.
    assert old_payload["updateOnly"] == {"duration": "7200s"}
    assert composed.status["tokenHash"] == NEXT
    status = composed.status["rotation"]
    assert "pending" not in status
    assert status["lastRotatedAt"] == "2026-12-05T12:00:00Z"
    assert status["nextRotationAt"] == "2027-01-04T12:00:00Z"
    assert status["oldKeyExpiresAt"] == "2026-12-05T14:00:00Z"
    (event,) = composed.events
    assert "keeps working until 2026-12-05T14:00:00Z" in event
    assert NEXT_KEY not in event
    assert FIXED_KEY not in event
    assert composed.revisit_at == NOW + timedelta(hours=2)


def switched(retire_at: str) -> dict[str, Any]:
    old = info(FIXED_KEY, alias=RETIRED)
    old["metadata"]["annotations"] = {rotation.RETIRE_AT: retire_at}
    old["spec"]["forProvider"]["mappings"] = [{"action": "OBSERVE"}]
    new = info(
        NEXT_KEY, spend=3.0, born="2026-12-05T11:00:00Z", notes={keyflow.ROTATION: "scheduled"}
    )
    return {
        "key": observed_secret(NEXT_KEY),
        "next-key": observed_secret(NEXT_KEY, "example-service-litellm-key-next"),
        request_resource_name(): old,
        request_resource_name(NEXT_KEY): new,
    }


def test_during_the_grace_period_the_old_request_stays_as_it_is() -> None:
    composed = run(xr({"every": "30d"}), switched("2026-12-05T13:00:00Z"))
    assert "next-key" not in composed.resources
    kept = body(composed, request_resource_name())
    assert kept["spec"]["forProvider"]["mappings"] == [{"action": "OBSERVE"}]
    assert kept["metadata"]["annotations"] == {rotation.RETIRE_AT: "2026-12-05T13:00:00Z"}
    assert composed.status["rotation"]["oldKeyExpiresAt"] == "2026-12-05T13:00:00Z"
    assert composed.status["rotation"]["lastRotatedAt"] == "2026-12-05T11:00:00Z"
    assert composed.revisit_at == datetime(2026, 12, 5, 13, tzinfo=UTC)
    assert secret_key(composed, "key") == NEXT_KEY
    assert composed.state.ready


def test_after_the_grace_period_the_old_request_is_dropped_which_deletes_the_key() -> None:
    composed = run(xr({"every": "30d"}), switched("2026-12-05T11:30:00Z"))
    assert request_resource_name() not in composed.resources
    assert request_resource_name(NEXT_KEY) in composed.resources
    assert "oldKeyExpiresAt" not in composed.status["rotation"]
    assert composed.revisit_at == datetime(2027, 1, 4, 11, tzinfo=UTC)  # the next rotation


def test_a_bumped_trigger_rotates_once() -> None:
    made_for_1 = {**STEADY, request_resource_name(): info(FIXED_KEY, notes={keyflow.TRIGGER: "1"})}
    composed = run(xr({"trigger": 2}), made_for_1)
    assert composed.status["rotation"]["pending"]["reason"] == "requested"
    assert notes(composed, request_resource_name())[keyflow.ROTATION] == "requested"
    unchanged = run(xr({"trigger": 1}), made_for_1)
    assert "next-key" not in unchanged.resources
    # The new key's Request is made for the trigger that asked for it.
    observed = rotating(RETIRED)
    observed[request_resource_name()]["metadata"]["annotations"][keyflow.TRIGGER] = "1"
    made = run(xr({"trigger": 2}), observed)
    assert notes(made, request_resource_name(NEXT_KEY))[keyflow.TRIGGER] == "2"


def test_a_new_virtualkey_with_a_trigger_does_not_rotate() -> None:
    composed = run(xr({"trigger": 7}), STEADY)
    assert "next-key" not in composed.resources
    assert notes(composed, request_resource_name()) == {keyflow.TRIGGER: "7"}


@pytest.mark.parametrize(
    ("why", "observed"),
    [
        (
            "a retired key is still in its grace period",
            {k: v for k, v in switched("2026-12-05T13:00:00Z").items() if k != "next-key"},
        ),
        (
            "the key is not in place",
            {**STEADY, request_resource_name(): observed_request(code=500)},
        ),
        (
            "its spend is not known",
            {**STEADY, request_resource_name(): observed_request(body={"info": {}})},
        ),
    ],
)
def test_a_rotation_waits_when(why: str, observed: dict[str, Any]) -> None:
    for name, request in observed.items():
        if name.startswith("request-"):
            request.setdefault("metadata", {}).setdefault("annotations", {})[keyflow.TRIGGER] = "1"
    assert "next-key" not in run(xr({"trigger": 2}), observed).resources, why


def test_no_rotation_without_spec_rotation() -> None:
    composed = run(xr(rotation={"lastRotatedAt": "2026-11-01T00:00:00Z"}), STEADY)
    assert "next-key" not in composed.resources
    assert "rotation" not in composed.status  # a status is never read back
    assert composed.revisit_at is None


def test_a_forged_pending_rotation_changes_nothing() -> None:
    forged = {
        "pending": {"tokenHash": NEXT, "reason": "{{ a:b:c }}", "carriedSpend": "0"},
        "lastRotatedAt": "2020-01-01T00:00:00Z",
        "trigger": 99,
    }
    with_status = run(xr({"every": "30d"}, rotation=forged), rotating(RETIRED))
    without = run(xr({"every": "30d"}), rotating(RETIRED))
    assert with_status.resources.keys() == without.resources.keys()
    assert payload(with_status, request_resource_name(NEXT_KEY))["createOnly"]["spend"] == 3.0
    assert payload(with_status, request_resource_name())["fields"]["max_budget"] == 3.0


# --- the gRPC layer: events, TTL and the response cache ----------------------------------------


def test_the_switch_is_a_normal_event_and_the_ttl_ends_with_the_grace_period() -> None:
    observed = rotating(RETIRED, **{request_resource_name(NEXT_KEY): info(NEXT_KEY, spend=3.0)})
    vk = xr({"every": "30d", "gracePeriod": "90s"})
    rsp = fn.run(make_request(vk, observed), now=NOW)
    normal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_NORMAL]
    assert len(normal) == 1
    assert "keeps working until 2026-12-05T12:01:30Z" in normal[0]
    assert rsp.meta.ttl.seconds == 60
    vk = xr({"every": "30d", "gracePeriod": "20s"})
    assert fn.run(make_request(vk, observed), now=NOW).meta.ttl.seconds == 21


def test_a_cached_response_is_not_served_past_the_time_it_changes(
    function_server: FunctionServer,
) -> None:
    retire = units.rfc3339(datetime.now(UTC) + timedelta(seconds=2))
    request = make_request(xr({"every": "30d"}), switched(retire))
    first = function_server.run(request)
    assert request_resource_name() in first.desired.resources  # in its grace period
    assert first.meta.ttl.seconds <= 3
    assert request_resource_name() in function_server.run(request).desired.resources  # cached
    time.sleep(3)
    assert request_resource_name() not in function_server.run(request).desired.resources


def with_keys(**keys: Any) -> Any:
    policy = copy.deepcopy(load_example("install/tenancy-policy.yaml"))
    policy["spec"]["rules"][0]["keys"] = keys
    return load_policies([policy])


def test_a_schedule_more_often_than_the_policy_allows_is_refused() -> None:
    with pytest.raises(InvalidInputError) as refused:
        run(xr({"every": "30m"}), STEADY)
    message = str(refused.value)
    assert "spec.rotation.every: '30m'" in message
    assert "rule 'team-a' of TenancyPolicy 'litellm-example'" in message
    assert "keys.minRotationInterval" in message
    assert "1h" in message
    assert run(xr({"every": "30m"}), STEADY, policies=with_keys(minRotationInterval="10m"))


def test_rotations_on_demand_wait_for_the_minimum_interval() -> None:
    """Counted from when the current key's Request was made (the API server's time)."""
    made = {
        **STEADY,
        request_resource_name(): info(
            FIXED_KEY, born="2026-12-05T11:30:00Z", notes={keyflow.TRIGGER: "1"}
        ),
    }
    held = run(xr({"trigger": 2}), made)
    assert "next-key" not in held.resources
    assert held.revisit_at == datetime(2026, 12, 5, 12, 30, tzinfo=UTC)
    later = run(xr({"trigger": 2}), made, now=NOW + timedelta(hours=1))
    assert "next-key" in later.resources
    sooner = with_keys(minRotationInterval="10m")
    assert "next-key" in run(xr({"trigger": 2}), made, policies=sooner).resources
    # A status that says the last rotation was long ago changes nothing.
    forged = xr({"trigger": 2}, rotation={"lastRotatedAt": "2020-01-01T00:00:00Z"})
    assert "next-key" not in run(forged, made).resources


def test_a_grace_period_longer_than_the_policy_allows_is_refused() -> None:
    with pytest.raises(InvalidInputError) as refused:
        run(xr({"every": "30d", "gracePeriod": "999mo"}), STEADY)
    message = str(refused.value)
    assert "spec.rotation.gracePeriod: '999mo'" in message
    assert "rule 'team-a' of TenancyPolicy 'litellm-example'" in message
    assert "keys.maxGracePeriod" in message
    assert "24h" in message
    assert run(xr({"gracePeriod": "48h"}), STEADY, policies=with_keys(maxGracePeriod="2d"))


def test_a_next_key_secret_rewritten_by_someone_else_is_not_used() -> None:
    """Not even a revoked key the tenant kept: only the key the old key's Request names."""
    chosen = "sk-" + "TenantChoseThisNextKey0123456789abcdefghijk"
    observed = rotating()
    observed["next-key"] = observed_secret(chosen, "example-service-litellm-key-next")
    composed = run(xr({"every": "30d"}), observed)
    made = secret_key(composed, "next-key")
    assert made not in (chosen, NEXT_KEY)
    assert notes(composed, request_resource_name())[keyflow.NEXT_KEY] == token_of(made)
    assert any("never used" in w for w in composed.warnings)
    # A forged status naming the tenant's key changes nothing.
    forged = xr({"every": "30d"}, rotation={"pending": {"tokenHash": token_of(chosen)}})
    assert secret_key(run(forged, observed), "next-key") not in (chosen, NEXT_KEY)
    # The key the function put there is used as it is.
    assert secret_key(run(xr({"every": "30d"}), rotating()), "next-key") == NEXT_KEY
    # And a next-key Secret with no rotation under way starts none.
    idle = {**STEADY, "next-key": observed_secret(chosen, "example-service-litellm-key-next")}
    assert "next-key" not in run(xr({"every": "60d"}), idle).resources


@pytest.mark.parametrize(
    "answer",
    [-1, "-0.5", "NaN", "Infinity", float("inf"), "1e20", 10**13, True, None, [], {}, "ten"],
)
def test_a_hostile_spend_in_a_proxy_answer_is_no_spend(answer: Any) -> None:
    # A proxy's answer decides what a new key carries: what is not money counts as unknown.
    assert units.dollars(answer) is None
    request = observed_request(body={"info": {"key_alias": "example-service", "spend": answer}})
    assert rotation.answered_spend(request) is None
    if not isinstance(answer, str):  # an alias is only ever compared with ours
        assert (
            rotation.answered_alias(observed_request(body={"info": {"key_alias": answer}})) is None
        )
    # With a budget, no rotation starts on a spend it cannot read.
    request["metadata"]["annotations"] = {keyflow.TRIGGER: "1"}
    assert (
        "next-key"
        not in run(xr({"trigger": 2}), {**STEADY, request_resource_name(): request}).resources
    )
