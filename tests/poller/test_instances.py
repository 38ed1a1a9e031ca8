"""The instances of a cycle: grouped per instance, platform first, tenant proxies in turn."""

from __future__ import annotations

from function.poller.accounts import AccountTarget
from function.poller.deadline import Deadline
from function.poller.instances import (
    TENANT_PROXY_SHARE,
    Group,
    InstanceResult,
    Instances,
    groups,
    in_order,
    next_turn,
)
from function.poller.metrics import Metrics
from tests.poller.conftest import key_target, settings, user_target


def test_each_instance_is_read_for_its_keys_and_accounts() -> None:
    keys = [key_target("t", "s1"), key_target("t", "s2"), key_target("t", "s1")]
    accounts: list[AccountTarget] = [user_target("t", "s2")]
    found = groups(keys, accounts)
    assert sorted(found) == sorted({k.connection.instance_id for k in keys})
    s1, s2 = (found[k.connection.instance_id] for k in keys[:2])
    assert (len(s1.keys), len(s1.accounts), len(s2.keys), len(s2.accounts)) == (2, 0, 1, 1)
    assert s1.tenant_proxy


def _names(listed: list[Group]) -> list[str]:
    return [g.keys[0].ref.name for g in listed]


def test_platform_instances_first_then_tenant_proxies_taking_turns() -> None:
    platform = [key_target("p", name, tenant_proxy=False) for name in ("b", "a")]
    tenants = [key_target("t", name) for name in ("s3", "s1", "s2")]
    found = groups([*platform, *tenants], [])
    first, second = in_order(found, 0)
    assert (_names(first), _names(second)) == (["a", "b"], ["s1", "s2", "s3"])
    assert _names(in_order(found, 4)[1]) == ["s2", "s3", "s1"]  # turn 4 of 3 is turn 1
    # The next cycle starts with the first tenant proxy this one did not reach.
    reached = [InstanceResult("s2"), InstanceResult("s3", reached=False), InstanceResult("s1")]
    assert next_turn(1, reached) == 0
    assert next_turn(1, [InstanceResult("s2", reached=False)] * 3) == 1
    assert next_turn(5, []) == 5


def test_a_tenant_proxy_gets_a_share_of_the_cycle() -> None:
    options = settings(interval=100.0, litellm_deadline=60.0)
    instances = Instances(None, options, Metrics())  # type: ignore[arg-type]
    cycle = Deadline.within(options.cycle_seconds, float("inf"))
    [platform] = groups([key_target("p", "a", tenant_proxy=False)], []).values()
    [tenant] = groups([key_target("t", "s1")], []).values()
    assert round(instances.deadline(platform, cycle).left()) == 60
    assert round(instances.deadline(tenant, cycle).left()) == 100 * TENANT_PROXY_SHARE
