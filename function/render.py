"""`render`: run the function on a VirtualKey file, without a cluster.

It builds the RunFunctionRequest Crossplane would send (the XR, optional
observed resources and function input), runs the function in-process and
returns YAML documents in `crossplane render`'s shape: the XR with the
status the function set, then each composed resource, then the results.

Like Crossplane (and `crossplane render --required-resources`), it answers
the function's requirements from the objects it is given: the
TenancyPolicies and Namespaces the function asks for.
"""

from __future__ import annotations

from typing import Any

import yaml
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format

from function.fn import run

RESOURCE_NAME_ANNOTATION = "crossplane.io/composition-resource-name"
COMPOSITE_LABEL = "crossplane.io/composite"

# The seed's VirtualKey, rendered when no file is given.
EXAMPLE = """\
apiVersion: auth.litellm.ai/v1alpha1
kind: VirtualKey
metadata:
  name: example-service
  namespace: team-a
spec:
  keyAlias: example-service
  models:
    - gpt-4o
  maxBudget: "10"
  budgetDuration: 1h
  connectionRef:
    instanceRef:
      name: litellm-example
      namespace: litellm
"""

_SEVERITY = {
    fnv1.SEVERITY_FATAL: "Fatal",
    fnv1.SEVERITY_WARNING: "Warning",
    fnv1.SEVERITY_NORMAL: "Normal",
}
_STATUS = {
    fnv1.STATUS_CONDITION_TRUE: "True",
    fnv1.STATUS_CONDITION_FALSE: "False",
    fnv1.STATUS_CONDITION_UNKNOWN: "Unknown",
}


# Crossplane's own bound (xfn.MaxRequirementsIterations).
_MAX_ITERATIONS = 5


class RenderError(ValueError):
    """A file that cannot be rendered, with the reason."""


# A file render reads is a handful of manifests. A YAML alias bomb (700 bytes
# that expand to gigabytes, or one long string aliased many times) is stopped
# by counting what it expands to: a node, plus its characters for a string.
MAX_TEXT = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_CHARACTERS = 4 * MAX_TEXT


def _expanded_size(value: Any, budget: list[int]) -> None:
    """Count nodes and characters as the document expands (aliases each time)."""
    budget[0] -= 1
    if isinstance(value, str):
        budget[1] -= len(value)
    if budget[0] < 0 or budget[1] < 0:
        msg = "too many nodes"
        raise RenderError(msg)
    if isinstance(value, dict):
        for key, item in value.items():
            _expanded_size(key, budget)
            _expanded_size(item, budget)
    elif isinstance(value, list):
        for item in value:
            _expanded_size(item, budget)


def load_documents(text: str, what: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file, each of which must be a mapping."""
    if len(text) > MAX_TEXT:
        msg = f"{what} is larger than {MAX_TEXT} characters"
        raise RenderError(msg)
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
        _expanded_size(docs, [MAX_NODES, MAX_CHARACTERS])
    except yaml.YAMLError as e:
        msg = f"{what} is not valid YAML: {e}"
        raise RenderError(msg) from None
    except (RenderError, RecursionError):
        msg = (
            f"{what} expands to more than {MAX_NODES} YAML nodes or {MAX_CHARACTERS} "
            "characters (aliases included); write the manifests out"
        )
        raise RenderError(msg) from None
    for doc in docs:
        if not isinstance(doc, dict):
            msg = f"{what} must hold YAML objects, found {type(doc).__name__}"
            raise RenderError(msg)
    return docs


def build_request(
    xr: dict[str, Any], observed: list[dict[str, Any]], fn_input: dict[str, Any] | None
) -> fnv1.RunFunctionRequest:
    """The request Crossplane would send for this XR and observed state."""
    req = fnv1.RunFunctionRequest()
    resource.update(req.observed.composite, xr)
    for obj in observed:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        name = annotations.get(RESOURCE_NAME_ANNOTATION)
        if not name:
            msg = f"observed resource {obj.get('kind')} lacks annotation {RESOURCE_NAME_ANNOTATION}"
            raise RenderError(msg)
        resource.update(req.observed.resources[name], obj)
    if fn_input is not None:
        req.input.CopyFrom(resource.dict_to_struct(fn_input))
    return req


def _selected(selector: fnv1.ResourceSelector, obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    if obj.get("apiVersion") != selector.api_version or obj.get("kind") != selector.kind:
        return False
    if selector.namespace and meta.get("namespace") != selector.namespace:
        return False
    if selector.WhichOneof("match") == "match_name":
        return bool(meta.get("name") == selector.match_name)
    labels = meta.get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.match_labels.labels.items())


def _satisfy(
    req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse, available: list[dict[str, Any]]
) -> None:
    """Answer the function's requirements from `available`, as Crossplane does."""
    for name, selector in rsp.requirements.resources.items():
        found = req.required_resources[name]
        found.Clear()
        for obj in available:
            if _selected(selector, obj):
                resource.update(found.items.add(), obj)


def render(
    xr: dict[str, Any],
    observed: list[dict[str, Any]],
    fn_input: dict[str, Any] | None,
    required: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """The rendered documents, and whether the function returned a Fatal result.

    `required` holds the objects Crossplane could fetch for the function.
    """
    req = build_request(xr, observed, fn_input)
    rsp = run(req)
    for _ in range(_MAX_ITERATIONS):
        if not rsp.requirements.resources or all(
            n in req.required_resources for n in rsp.requirements.resources
        ):
            break
        _satisfy(req, rsp, required or [])
        rsp = run(req)
    meta = xr.get("metadata") or {}
    out_xr: dict[str, Any] = {
        "apiVersion": xr.get("apiVersion"),
        "kind": xr.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "namespace") if k in meta},
    }
    status = resource.struct_to_dict(rsp.desired.composite.resource).get("status") or {}
    conditions = [
        {
            "type": c.type,
            "status": _STATUS.get(c.status, "Unknown"),
            "reason": c.reason,
            **({"message": c.message} if c.message else {}),
        }
        for c in rsp.conditions
    ]
    if status or conditions:
        out_xr["status"] = {**status, **({"conditions": conditions} if conditions else {})}
    docs = [out_xr]
    for name in sorted(rsp.desired.resources):
        desired = rsp.desired.resources[name]
        body = json_format.MessageToDict(desired.resource, preserving_proto_field_name=True)
        body_meta = body.setdefault("metadata", {})
        body_meta.setdefault("annotations", {})[RESOURCE_NAME_ANNOTATION] = name
        body_meta.setdefault("labels", {})[COMPOSITE_LABEL] = meta.get("name", "")
        docs.append(body)
    fatal = False
    for result in rsp.results:
        fatal = fatal or result.severity == fnv1.SEVERITY_FATAL
        docs.append(
            {
                "apiVersion": "render.crossplane.io/v1beta1",
                "kind": "Result",
                "severity": _SEVERITY.get(result.severity, "Unspecified"),
                "message": result.message,
            }
        )
    return docs, fatal


def dump(docs: list[dict[str, Any]]) -> str:
    """YAML documents separated by `---`, keys in insertion order."""
    return "---\n" + "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
