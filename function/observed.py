"""Plain dicts from Crossplane's protobuf, holding only what the function reads.

Converting a whole observed provider-http Request (its status keeps the last
response body) costs more than composing the key. So for the kinds the
function composes, only the fields `compose` reads are converted:

- the XR: `apiVersion`, `kind`, `spec`, its name, namespace, labels and uid,
  and nothing of its status: that is the function's output, for people, and
  tenants may be able to write it (docs/tenancy.md, threat model);
- a Secret: `data`;
- a Request: its name, namespace, labels, annotations (the function's memory,
  function/keyflow.py), creation time and `spec`, and the parts of `status`
  that say what LiteLLM last answered.

Anything else is converted whole.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2


def value(v: struct_pb2.Value) -> Any:
    """A protobuf Value as plain Python values (numbers stay floats, as in JSON)."""
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return {k: value(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [value(x) for x in v.list_value.values]
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        return v.number_value
    if kind == "bool_value":
        return v.bool_value
    return None


def plain(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A protobuf Struct as a plain dict."""
    return {k: value(x) for k, x in struct.fields.items()}


def _pick(struct: struct_pb2.Struct, *names: str) -> dict[str, Any]:
    return {n: value(struct.fields[n]) for n in names if n in struct.fields}


def composite(struct: struct_pb2.Struct) -> dict[str, Any]:
    """The XR's identity and spec; never its status (a tenant may write it, however large)."""
    view = _pick(struct, "apiVersion", "kind", "spec")
    if "metadata" in struct.fields:
        meta = struct.fields["metadata"]
        if meta.WhichOneof("kind") == "struct_value":
            view["metadata"] = _pick(meta.struct_value, "name", "namespace", "labels", "uid")
        else:
            view["metadata"] = value(meta)
    return view


def composed(struct: struct_pb2.Struct) -> dict[str, Any]:
    """An observed composed resource, reduced to what compose() reads."""
    kind = struct.fields["kind"].string_value if "kind" in struct.fields else ""
    if kind == "Secret":
        return _pick(struct, "apiVersion", "kind", "data")
    if kind == "Request":
        view = _pick(struct, "apiVersion", "kind")
        status = struct.fields["status"] if "status" in struct.fields else None
        if status is not None and status.WhichOneof("kind") == "struct_value":
            view["status"] = _pick(
                status.struct_value, "response", "requestDetails", "error", "conditions", "cache"
            )
        # The whole spec (a few kB): a replaced Request may have to be kept as it is.
        if "spec" in struct.fields:
            view["spec"] = value(struct.fields["spec"])
        if "metadata" in struct.fields and struct.fields["metadata"].WhichOneof("kind") == (
            "struct_value"
        ):
            view["metadata"] = _pick(
                struct.fields["metadata"].struct_value,
                "name",
                "namespace",
                "labels",
                "annotations",
                "creationTimestamp",
            )
        return view
    return plain(struct)
