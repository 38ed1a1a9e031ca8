"""The provider-http Request every kind composes, and the rules all of them follow.

- `Place`: where a Request goes and how it reaches the proxy; one value for
  all of one XR's Requests.
- `http_request(place, ...)`: the whole `http.m.crossplane.io/v1alpha2`
  Request; `removal_mappings(...)` for one that exists to delete one thing.
- `GUARDS`: what every jq check starts with, so that no answer makes it fail.

Design rules, each from provider-http's source (../shared/docs/provider-http-request.md
and docs/design.md):

- Every URL and body is templated from `.payload` only, never from
  `.response`: the stored response is whatever answered last.
- Every mapping sets `action` and `method`: LiteLLM writes are all POSTs.
- The master key is only ever a placeholder for the connection's Secret.
- Every HTTP error is an answer (`ALLOWED_STATUS_CODES`), and every jq
  access is type-guarded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from function.tenancy.connection import Connection

REQUEST_API_VERSION = "http.m.crossplane.io/v1alpha2"
REQUEST_KIND = "Request"

# Every HTTP error counts as an answer, not as "not created". provider-http
# treats a failed POST as a Request that never created anything
# (observe.go, isObjectValidForObservation): a REMOVE refused for a wrong
# master key, or a 500, would then end the deletion and leave a live key
# behind. Whether the key exists is the checks' business (404 or deleted).
ALLOWED_STATUS_CODES = list(range(400, 600))

# Total jq programs: every access is type-guarded, so that no answer, however
# shaped, makes a check fail. provider-http resolves secret placeholders in
# answers before the checks run, and a failing check's error text (which
# gojq fills with a preview of the value) would land in the Request's status.
GUARDS = (
    'def obj: if type == "object" then . else {} end;'
    ' def arr: if type == "array" then . else [] end;'
    " (.response | obj) as $r"
)


@dataclass(frozen=True)
class Place:
    """Where a Request goes and how it reaches the proxy; the same for all of one XR's."""

    namespace: str
    connection: Connection
    provider_config: dict[str, str]
    wait_timeout: str
    labels: dict[str, str]


def http_request(  # noqa: PLR0913 - each argument is one independent fact.
    *,
    name: str,
    place: Place,
    payload: dict[str, Any],
    mappings: list[dict[str, str]],
    is_removed: str,
    expected: str,
    extra: dict[str, Any] | None = None,
    management_policies: list[str] | None = None,
) -> dict[str, Any]:
    """A provider-http Request against one LiteLLM proxy, as every kind builds it.

    The master key is only ever a placeholder for the connection's Secret,
    every HTTP error is an answer (`ALLOWED_STATUS_CODES`), and the payload
    is compact, key-sorted JSON so that the same inputs give the same bytes.
    """
    connection = place.connection
    spec: dict[str, Any] = {"providerConfigRef": place.provider_config}
    if management_policies is not None:
        spec["managementPolicies"] = management_policies
    spec["forProvider"] = {
        "waitTimeout": place.wait_timeout,
        "allowedStatusCodes": ALLOWED_STATUS_CODES,
        "headers": {
            "Content-Type": ["application/json"],
            "Authorization": [f"Bearer {connection.master_key.placeholder()}"],
        },
        "payload": {
            "baseUrl": connection.base_url,
            "body": json.dumps(payload, sort_keys=True, separators=(",", ":")),
        },
        "mappings": mappings,
        "isRemovedCheck": {"type": "CUSTOM", "logic": is_removed},
        "expectedResponseCheck": {"type": "CUSTOM", "logic": expected},
        **(extra or {}),
    }
    return {
        "apiVersion": REQUEST_API_VERSION,
        "kind": REQUEST_KIND,
        "metadata": {"name": name, "namespace": place.namespace, "labels": place.labels},
        "spec": spec,
    }


def removal_mappings(observe_url: str, remove_url: str, remove_body: str) -> list[dict[str, str]]:
    """OBSERVE and REMOVE only, for a Request that exists to delete one thing.

    Such a Request is made with `managementPolicies: [Observe, Delete]`: it
    never creates or changes anything, and deleting it runs REMOVE.
    """
    return [
        {"action": "OBSERVE", "method": "GET", "url": observe_url},
        {"action": "REMOVE", "method": "POST", "url": remove_url, "body": remove_body},
    ]


# A Request that exists to delete one thing: it never creates or changes it.
ONLY_REMOVE = ["Observe", "Delete"]
# A Request that only reads: deleting it deletes nothing on the proxy.
ONLY_OBSERVE = ["Observe"]


def as_observed(
    request: dict[str, Any],
    *,
    spec: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An observed Request composed again as it stands, so Crossplane keeps it.

    Only its name, namespace and labels are carried (Crossplane owns the rest
    of the metadata), with `annotations` if given, and its spec, or `spec`
    in its place.
    """
    meta = request.get("metadata") or {}
    metadata = {k: meta[k] for k in ("name", "namespace", "labels") if k in meta}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": request.get("apiVersion"),
        "kind": request.get("kind"),
        "metadata": metadata,
        "spec": (request.get("spec") or {}) if spec is None else spec,
    }
