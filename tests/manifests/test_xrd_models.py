"""Our XRDs agree with the function: legacy = v2, fields and patterns = the models'.

- The legacy XRDs' versions are the v2 XRDs' (VirtualKey, User, Team);
- each XRD's fields are its spec model's, its patterns the function's, and
  every pattern compiles as RE2 (the API server's regular expressions);
- each XRD's schema is structural; the Input CRD's fields are the `Input` model's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
import re2  # type: ignore[import-untyped]  # google-re2, a dependency of cel-python

from function import input as fn_input_module
from function import validation
from function.accounts import spec as account_specs
from function.keys import spec as key_spec
from function.tenancy.connection import ConnectionRef
from tests.manifests.schemas import input_schema, one, untyped, xrd_version_schema

XRD_FILES = {
    "VirtualKey": "install/definition.yaml",
    "User": "accounts/user-definition.yaml",
    "Team": "accounts/team-definition.yaml",
}
SPEC_MODELS: dict[str, type[Any]] = {
    "VirtualKey": key_spec.VirtualKeySpec,
    "User": account_specs.UserSpec,
    "Team": account_specs.TeamSpec,
}


@pytest.mark.parametrize("kind", sorted(XRD_FILES))
def test_legacy_xrd_versions_are_the_v2_xrds(kind: str) -> None:
    v2 = one(f"examples/{XRD_FILES[kind]}")
    legacy = one(f"examples/legacy/{Path(XRD_FILES[kind]).name}")
    assert legacy["spec"]["versions"] == v2["spec"]["versions"]
    assert legacy["spec"]["claimNames"] == {
        k: v for k, v in v2["spec"]["names"].items() if k != "categories"
    } | {"categories": v2["spec"]["names"]["categories"]}
    assert legacy["spec"]["group"] == v2["spec"]["group"]
    assert legacy["spec"]["names"]["kind"] == f"X{kind}"


@pytest.mark.parametrize("kind", sorted(XRD_FILES))
def test_each_xrds_fields_are_its_models_fields(kind: str) -> None:
    (version,) = one(f"examples/{XRD_FILES[kind]}")["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = SPEC_MODELS[kind].model_fields
    assert set(spec["properties"]) == {f.alias or n for n, f in fields.items()}
    assert set(spec["required"]) == {f.alias or n for n, f in fields.items() if f.is_required()}
    connection = spec["properties"]["connectionRef"]["properties"]
    assert set(connection) == {f.alias or n for n, f in ConnectionRef.model_fields.items()}


def _no_nulls(value: Any, path: str = "") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _no_nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _no_nulls(v, f"{path}[{i}]")]
    return []


@pytest.mark.parametrize(
    "path", sorted([*XRD_FILES.values(), *(f"legacy/{Path(f).name}" for f in XRD_FILES.values())])
)
def test_xrd_schemas_are_structural(path: str) -> None:
    """A YAML slip (a comma in a flow mapping) becomes a null the API server refuses."""
    xrd = one(f"examples/{path}")
    assert _no_nulls(xrd) == []
    for version in xrd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        jsonschema.Draft7Validator.check_schema(schema)
        assert untyped(schema) == []


def _spec_props() -> dict[str, Any]:
    props = xrd_version_schema("v2")["properties"]["spec"]["properties"]
    assert isinstance(props, dict)
    return props


def test_xrd_fields_are_the_models_fields() -> None:
    aliases = {f.alias or name for name, f in key_spec.VirtualKeySpec.model_fields.items()}
    assert set(_spec_props()) == aliases
    connection = _spec_props()["connectionRef"]["properties"]
    assert set(connection) == {f.alias or n for n, f in ConnectionRef.model_fields.items()}
    schema_required = set(xrd_version_schema("v2")["properties"]["spec"]["required"])
    model_required = {
        f.alias or n for n, f in key_spec.VirtualKeySpec.model_fields.items() if f.is_required()
    }
    assert schema_required == model_required


def test_xrd_patterns_are_the_models() -> None:
    props = _spec_props()
    conn = props["connectionRef"]["properties"]
    assert props["keyAlias"]["pattern"] == validation.KEY_ALIAS_PATTERN
    assert props["maxBudget"]["pattern"] == validation.DOLLARS_PATTERN
    assert props["softBudget"]["pattern"] == validation.DOLLARS_PATTERN
    assert props["budgetDuration"]["pattern"] == validation.DURATION_PATTERN
    assert props["duration"]["pattern"] == validation.DURATION_PATTERN
    assert conn["instanceRef"]["properties"]["name"]["pattern"] == validation.DNS_LABEL_PATTERN
    assert conn["instanceRef"]["properties"]["namespace"]["pattern"] == validation.DNS_LABEL_PATTERN
    secret = conn["masterKeySecretRef"]["properties"]
    assert secret["name"]["pattern"] == validation.DNS_SUBDOMAIN_PATTERN
    assert secret["namespace"]["pattern"] == validation.DNS_LABEL_PATTERN
    assert secret["key"]["pattern"] == validation.SECRET_KEY_PATTERN
    assert props["models"]["maxItems"] == 200
    assert props["tags"]["maxItems"] == 64
    assert props["metadata"]["maxProperties"] == 64


def test_xrd_patterns_compile_as_re2() -> None:
    """The API server uses Go's RE2: no lookarounds or backreferences."""

    def patterns(schema: Any) -> Iterator[str]:
        if isinstance(schema, dict):
            for key, value in schema.items():
                if key == "pattern":
                    yield value
                else:
                    yield from patterns(value)
        elif isinstance(schema, list):
            for item in schema:
                yield from patterns(item)

    found = [*patterns(xrd_version_schema("v2")), *patterns(input_schema())]
    assert len(found) >= 10
    for pattern in found:
        re2.compile(pattern)


def test_input_crd_matches_the_input_model() -> None:
    props = input_schema()["properties"]
    aliases = {f.alias or n for n, f in fn_input_module.Input.model_fields.items()}
    assert set(props) == aliases
    kinds = get_args(fn_input_module.ProviderConfigRef.model_fields["kind"].annotation)
    assert set(props["providerConfigRef"]["properties"]["kind"]["enum"]) == set(kinds)
    assert props["requestTimeout"]["pattern"] == r"^[1-9][0-9]{0,3}(s|m)$"
    assert fn_input_module.parse_input({"requestTimeout": "30s"}).request_timeout == "30s"
