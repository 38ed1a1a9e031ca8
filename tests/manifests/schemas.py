"""What the manifest tests check against: the real CRD schemas, ours, and the manifests' YAML.

- `crd_schema(apiVersion, kind)`: an upstream CRD's openAPIV3Schema (provider-http's,
  Crossplane's), from ../shared/schemas, found through `tests.conftest.SHARED`;
- `schema_errors(schema, obj)`: JSON-schema errors, with the one Kubernetes type
  keyword our XRDs use; `untyped(schema)`: what makes a schema non-structural;
- our own schemas: `xrd_version_schema` (the VirtualKey XRD, v2 or legacy),
  `input_schema` and `policy_schema` (package/);
- `yaml_docs(path)` and `one(path)`: the documents of a manifest;
- Kubernetes' rules for names and labels.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.conftest import INSTALL, LEGACY, ROOT, SHARED

SCHEMAS = SHARED / "schemas"
INPUT_CRD = ROOT / "package" / "input" / "litellm.fn.crossplane.io_inputs.yaml"
POLICY_CRD = ROOT / "package" / "policy" / "litellm.fn.crossplane.io_tenancypolicies.yaml"

RFC1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
RFC1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    """The documents of a YAML file, without empty ones."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@functools.cache
def crd_index() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema for every CRD version in ../shared/schemas."""
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(SCHEMAS.rglob("*.yaml")):
        for crd in yaml_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                index[(f"{group}/{version['name']}", kind)] = schema
    return index


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    return crd_index()[(api_version, kind)]


def _int_or_string(
    validator: Any, enabled: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    del validator, schema
    is_int = isinstance(instance, int) and not isinstance(instance, bool)
    if enabled and not (is_int or isinstance(instance, str)):
        yield jsonschema.ValidationError(f"{instance!r} is neither an integer nor a string")


# Draft 7 plus the one Kubernetes type keyword our XRD uses.
K8sValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"x-kubernetes-int-or-string": _int_or_string}
)


def schema_errors(schema: dict[str, Any], obj: Any) -> list[str]:
    validator = K8sValidator(schema)
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message[:300]}"
        for e in validator.iter_errors(obj)
    ]


def one(path: str) -> dict[str, Any]:
    """The one document of a manifest, by its path in the repository."""
    (doc,) = yaml_docs(ROOT / path)
    return doc


@functools.cache
def xrd_version_schema(kind: str) -> dict[str, Any]:
    """Our XRD's schema for a VirtualKey (v2 XR) or its legacy claim."""
    path = (INSTALL if kind == "v2" else LEGACY) / "definition.yaml"
    (xrd,) = yaml_docs(path)
    (version,) = xrd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert isinstance(schema, dict)
    return schema


@functools.cache
def own_crd_schema(path: Path) -> dict[str, Any]:
    """The openAPIV3Schema of one of our single-version CRDs."""
    (crd,) = yaml_docs(path)
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert isinstance(schema, dict)
    return schema


def input_schema() -> dict[str, Any]:
    return own_crd_schema(INPUT_CRD)


def policy_schema() -> dict[str, Any]:
    return own_crd_schema(POLICY_CRD)


def untyped(schema: dict[str, Any], path: str = "") -> list[str]:
    """Where a schema has no type (a structural schema has one everywhere); bad patterns raise."""
    found = []
    if not (
        "type" in schema
        or schema.get("x-kubernetes-int-or-string")
        or schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        found.append(f"{path or '<root>'}: no type")
    for key, sub in (schema.get("properties") or {}).items():
        found += untyped(sub, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += untyped(schema[key], f"{path}.{key}")
    for key, value in schema.items():
        if key == "pattern":
            re.compile(value)
    return found
