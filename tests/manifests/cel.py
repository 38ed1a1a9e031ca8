"""The CEL rules (`x-kubernetes-validations`) of a CRD, evaluated with cel-python.

- `cel(rule, value, old)`: one rule, with `self` (and `oldSelf` for an update);
- `cel_walk(schema, value)`: every rule that applies to a present value;
- `cel_violations(schema, obj)`: the rules that fail, and those cel-python cannot
  evaluate (`CelUnevaluableError`, a Kubernetes CEL extension it lacks);
- `rules_of(schema)`, `program(rule)`: one schema node's rules, one compiled rule.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel


def _lower_ascii(value: celtypes.Value) -> celtypes.StringType:
    return celtypes.StringType(str(value).lower())


# Kubernetes' CEL string library functions that our CRDs use and cel-python lacks.
K8S_FUNCTIONS: dict[str, Any] = {"lowerAscii": _lower_ascii}
CEL_ENV = celpy.Environment()


class CelUnevaluableError(Exception):
    """cel-python cannot compile or evaluate this rule (a Kubernetes CEL extension)."""


@functools.cache
def program(rule: str) -> celpy.Runner:
    try:
        return CEL_ENV.program(CEL_ENV.compile(rule), functions=K8S_FUNCTIONS)
    except Exception as e:
        msg = f"{rule}: {e}"
        raise CelUnevaluableError(msg) from e


def cel(rule: str, value: Any, old: Any = None) -> bool:
    """Evaluate one x-kubernetes-validations rule with self (and oldSelf for updates)."""
    activation = {"self": json_to_cel(value)}
    if old is not None:
        activation["oldSelf"] = json_to_cel(old)
    try:
        result = program(rule).evaluate(activation)
    except CelUnevaluableError:
        raise
    except Exception as e:
        msg = f"{rule}: {e}"
        raise CelUnevaluableError(msg) from e
    if isinstance(result, celpy.evaluation.CELEvalError):
        msg = f"{rule}: {result}"
        raise CelUnevaluableError(msg)
    return bool(result)


def rules_of(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The x-kubernetes-validations of one schema node."""
    return list(schema.get("x-kubernetes-validations") or [])


def cel_walk(schema: dict[str, Any], value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, rule, value) for every CEL rule that applies to a present value."""
    for rule in rules_of(schema):
        yield path, rule["rule"], value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                yield from cel_walk(props[key], item, f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from cel_walk(extra, item, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from cel_walk(schema["items"], item, f"{path}[{index}]")


def cel_violations(schema: dict[str, Any], obj: Any) -> tuple[list[str], list[str]]:
    """CEL rules that fail on obj, and rules cel-python could not evaluate.

    A transition rule (one with oldSelf) is evaluated as for an unchanged
    update, oldSelf = self: the API server skips it on create, and it must
    hold when nothing changes.
    """
    failed, unevaluable = [], []
    for path, rule, value in cel_walk(schema, obj):
        old = value if "oldSelf" in rule else None
        try:
            if not cel(rule, value, old):
                failed.append(f"{path or '<root>'}: {rule}")
        except CelUnevaluableError as e:
            unevaluable.append(f"{path or '<root>'}: {e}")
    return failed, unevaluable
