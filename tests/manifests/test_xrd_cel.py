"""The CEL rules (`x-kubernetes-validations`) of the VirtualKey XRD, evaluated with cel-python.

Every rule is evaluable and holds for the examples; each one against good and
bad specs, and the function's own model agrees with it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from function import validation
from function.keys import spec as key_spec
from tests.conftest import load_example
from tests.manifests.cel import cel, cel_violations, program, rules_of
from tests.manifests.schemas import schema_errors, xrd_version_schema


def _seed_spec() -> dict[str, Any]:
    spec = copy.deepcopy(load_example("virtualkey/virtualkey-explicit.yaml")["spec"])
    assert isinstance(spec, dict)
    return spec


def _rule_at(path: tuple[str, ...], contains: str) -> str:
    schema = xrd_version_schema("v2")["properties"]["spec"]
    for part in path:
        schema = schema["properties"][part]
    (rule,) = [str(r["rule"]) for r in rules_of(schema) if contains in r["rule"]]
    return rule


def test_every_xrd_rule_is_evaluable_by_cel_python() -> None:
    def every(schema: Any) -> Iterator[str]:
        if isinstance(schema, dict):
            for rule in rules_of(schema):
                yield rule["rule"]
            for value in schema.values():
                yield from every(value)
        elif isinstance(schema, list):
            for item in schema:
                yield from every(item)

    rules = list(every(xrd_version_schema("v2")))
    assert len(rules) == 12
    for rule in rules:
        program(rule)  # raises CelUnevaluableError if cel-python cannot
    # Every rule holds for the examples on create and on an unchanged update.
    for name in (
        "virtualkey/virtualkey.yaml",
        "virtualkey/virtualkey-advanced.yaml",
        "virtualkey/virtualkey-explicit.yaml",
        "rotation/virtualkey-rotation.yaml",
    ):
        spec = load_example(name)["spec"]
        failed, unevaluable = cel_violations(xrd_version_schema("v2")["properties"]["spec"], spec)
        assert (failed, unevaluable) == ([], [])


DURATION_RULE = ((), "self.duration")
SOFT_RULE = ((), "softBudget")


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        ({}, {}, True),
        ({"duration": "30d"}, {"duration": "30d"}, True),
        ({}, {"duration": "30d"}, False),
        ({"duration": "30d"}, {}, False),
        ({"duration": "30d"}, {"duration": "60d"}, False),
    ],
)
def test_cel_duration_is_immutable(old: dict[str, Any], new: dict[str, Any], ok: bool) -> None:
    rule = _rule_at(*DURATION_RULE)
    assert cel(rule, {"keyAlias": "a1", **new}, {"keyAlias": "a1", **old}) is ok


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({}, True),
        ({"softBudget": "8"}, True),
        ({"maxBudget": "10"}, True),
        ({"softBudget": "8", "maxBudget": "10"}, True),
        ({"softBudget": "10", "maxBudget": 10}, True),
        ({"softBudget": 8, "maxBudget": "10.5"}, True),
        ({"softBudget": "10.5", "maxBudget": "10"}, False),
        ({"softBudget": "0.000001", "maxBudget": "0"}, False),
        ({"softBudget": 11, "maxBudget": 10}, False),
    ],
)
def test_cel_soft_budget_at_most_max_budget(fields: dict[str, Any], ok: bool) -> None:
    rule = _rule_at(*SOFT_RULE)
    assert cel(rule, fields) is ok
    # The function agrees with the API server.
    if "softBudget" in fields and "maxBudget" in fields:
        soft, top = Decimal(str(fields["softBudget"])), Decimal(str(fields["maxBudget"]))
        assert (soft <= top) is ok


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [("team-a-svc", "team-a-svc", True), ("team-a-svc", "team-a-svc2", False)],
)
def test_cel_key_alias_is_immutable(old: str, new: str, ok: bool) -> None:
    assert cel(_rule_at(("keyAlias",), "oldSelf"), new, old) is ok


@pytest.mark.parametrize(("alias", "ok"), [("a.b", True), ("a..b", False), ("..", False)])
def test_cel_key_alias_without_dot_dot(alias: str, ok: bool) -> None:
    assert cel(_rule_at(("keyAlias",), "contains"), alias) is ok


@pytest.mark.parametrize(
    ("metadata", "ok"),
    [
        ({}, True),
        ({"owner": "team-a", "tmpl": "{x}"}, True),
        ({"owner": "{{ a:b:c }}"}, False),
        ({"{{owner": "team-a"}, False),
        ({"a": "x{{"}, False),
    ],
)
def test_cel_metadata_without_placeholders(metadata: dict[str, str], ok: bool) -> None:
    assert cel(_rule_at(("metadata",), "{{"), metadata) is ok


@pytest.mark.parametrize(
    ("metadata", "ok"),
    [
        ({}, True),
        ({"owner": "a", "tag": "x"}, True),
        ({"logging": "x"}, False),
        ({"tags": "x"}, False),
    ],
)
def test_cel_metadata_without_litellms_own_keys(metadata: dict[str, str], ok: bool) -> None:
    assert cel(_rule_at(("metadata",), "guardrails"), metadata) is ok
    # The function agrees with the API server.
    assert (not set(metadata) & set(key_spec.RESERVED_METADATA_KEYS)) is ok


@pytest.mark.parametrize(
    ("metadata", "ok"),
    [
        ({"owner": "a"}, True),
        ({"litellm.ai/x": "a"}, True),
        ({"auth.litellm.ai/namespace": "victim"}, False),
        ({"auth.litellm.ai/virtualkey": "key", "owner": "a"}, False),
    ],
)
def test_cel_metadata_without_provenance_keys(metadata: dict[str, str], ok: bool) -> None:
    assert cel(_rule_at(("metadata",), "startsWith"), metadata) is ok
    # The function agrees with the API server.
    spec = {**_seed_spec(), "metadata": metadata}
    if ok:
        key_spec.parse_spec(spec)
    else:
        with pytest.raises(validation.InvalidInputError, match=r"auth\.litellm\.ai/"):
            key_spec.parse_spec(spec)


INSTANCE = {"name": "litellm-example", "namespace": "litellm"}
EXPLICIT = {"url": "http://litellm:4000", "masterKeySecretRef": {"name": "s"}}


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ({"instanceRef": INSTANCE}, True),
        (EXPLICIT, True),
        ({"instanceRef": INSTANCE, **EXPLICIT}, False),
        ({"instanceRef": INSTANCE, "url": "http://x"}, False),
        ({}, False),
        ({"url": "http://x"}, False),
        ({"masterKeySecretRef": {"name": "s"}}, False),
    ],
)
def test_cel_connection_ref_has_one_form(ref: dict[str, Any], ok: bool) -> None:
    props = ("connectionRef",)
    one_form = _rule_at(props, "has(self.instanceRef)")
    together = _rule_at(props, "has(self.url) ==")
    assert (cel(one_form, ref) and cel(together, ref)) is ok
    # The function's model agrees.
    spec = {"keyAlias": "ab", "connectionRef": ref}
    if ok:
        key_spec.parse_spec(spec)
    else:
        with pytest.raises(validation.InvalidInputError, match=r"spec\.connectionRef"):
            key_spec.parse_spec(spec)


@pytest.mark.parametrize(
    ("new", "ok"),
    [({"instanceRef": INSTANCE}, True), ({"instanceRef": {**INSTANCE, "name": "other"}}, False)],
)
def test_cel_connection_ref_is_immutable(new: dict[str, Any], ok: bool) -> None:
    rule = _rule_at(("connectionRef",), "oldSelf")
    assert cel(rule, new, {"instanceRef": INSTANCE}) is ok


def test_xrd_schema_refuses_what_the_function_refuses() -> None:
    """A few bad specs: both the schema (with CEL) and the function say no."""
    spec_schema = xrd_version_schema("v2")["properties"]["spec"]
    bad: list[dict[str, Any]] = [
        {"maxBudget": 0.5},
        {"maxBudget": "0.1234567"},
        {"duration": "0d"},
        {"keyAlias": "a"},
        {"models": ["{{ a:b:c }}"]},
        {"metadata": {"k": "{{ a:b:c }}"}},
        {"connectionRef": {}},
        {"tpmLimit": -1},
        {"maxParallelRequests": 0},
    ]
    for change in bad:
        spec = {**_seed_spec(), **change}
        failed, _ = cel_violations(spec_schema, spec)
        assert schema_errors(spec_schema, spec) or failed, change
        with pytest.raises(validation.InvalidInputError):
            key_spec.parse_spec(spec)
