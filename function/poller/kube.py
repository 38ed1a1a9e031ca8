"""The Kubernetes API, as the poller uses it, over the kubernetes client.

- `XRRef`: which VirtualKey (v2 namespaced `virtualkeys`, or legacy
  cluster-scoped `xvirtualkeys`).
- `Cluster`: the protocol the cycle needs; `KubeCluster` implements it over
  `kubeapi.KubeApi`:

  - `list_virtualkeys()`: both kinds, paged 500 at a time; a kind whose CRD
    is not installed is skipped.
  - `get_virtualkey(ref)`, `patch_status(ref, patch)`: the status
    subresource, as a JSON merge patch, with field manager
    `function-litellm-keys-poller`. The caller puts
    `metadata.resourceVersion` in the patch, so a concurrent writer makes
    it fail with `KubeConflictError`.
  - `list_policies()`: every TenancyPolicy (none if its CRD is missing).
  - `namespace_labels()`: every Namespace's labels, for the policy's
    namespace selectors.
  - `read_secret_value(namespace, name, key)`: a master key, decoded.
  - `list_secret_metadata(namespace)`: the Secrets of one namespace, their
    metadata only (never their data), for the mask Secrets' collection.
  - `list_request_names(label_selector)`: provider-http Requests in every
    namespace, metadata only; a missing CRD is an error here, not "none".
  - `delete_secret(namespace, name, uid, resource_version)`: with both as
    preconditions, so only the very object that was listed goes.
  - `emit_event(target, event)`: a core/v1 Event.
  - `get_lease`, `create_lease`, `replace_lease`: coordination.k8s.io/v1.

- `api_client(kubeconfig, context)`: in-cluster configuration inside a pod,
  kubeconfig outside.

Requests, paged lists and the errors (`KubeError` and its kinds) are
`kubeapi`'s.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from function.poller.kubeapi import (
    METADATA_ONLY,
    KubeApi,
    KubeNotFoundError,
    KubePermanentError,
    KubeTemporaryError,
)
from function.poller.redact import redact
from function.poller.state import Event
from function.tenancy.policy import POLICY_API_VERSION
from function.units import rfc3339

log = logging.getLogger(__name__)

GROUP = "auth.litellm.ai"
VERSION = "v1alpha1"
PLURAL = "virtualkeys"
LEGACY_PLURAL = "xvirtualkeys"
LEGACY_KIND = "XVirtualKey"
ACCOUNT_PLURALS = ("users", "teams", "xusers", "xteams")
FIELD_MANAGER = "function-litellm-keys-poller"
REQUEST_PATH = "/apis/http.m.crossplane.io/v1alpha2/requests"


@dataclass(frozen=True)
class XRRef:
    """One VirtualKey: its plural, name and (for v2 XRs) namespace."""

    plural: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, plural: str, item: dict[str, Any]) -> XRRef:
        """The reference of a listed object."""
        meta = item.get("metadata") or {}
        return cls(plural, str(meta.get("name", "")), meta.get("namespace") or None)

    def __str__(self) -> str:
        """`virtualkeys/ns/name` or `xvirtualkeys/name`."""
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.plural}/{where}{self.name}"

    def path(self, subresource: str = "") -> str:
        """The object's API path."""
        base = f"/apis/{GROUP}/{VERSION}"
        if self.namespace:
            base += f"/namespaces/{self.namespace}"
        path = f"{base}/{self.plural}/{self.name}"
        return f"{path}/{subresource}" if subresource else path


class Cluster(Protocol):
    """What the poller needs from Kubernetes."""

    def list_virtualkeys(self) -> list[tuple[XRRef, dict[str, Any]]]:
        """Every VirtualKey, both kinds."""
        ...

    def get_virtualkey(self, ref: XRRef) -> dict[str, Any]:
        """One VirtualKey, fresh."""
        ...

    def list_accounts(self) -> list[tuple[XRRef, dict[str, Any]]]:
        """Every User and Team."""
        ...

    def patch_status(self, ref: XRRef, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource."""
        ...

    def list_policies(self) -> list[dict[str, Any]]:
        """Every TenancyPolicy."""
        ...

    def namespace_labels(self) -> dict[str, dict[str, str]]:
        """Each Namespace's labels, by name."""
        ...

    def read_secret_value(self, namespace: str, name: str, key: str) -> str:
        """One decoded data value of a Secret."""
        ...

    def list_secret_metadata(self, namespace: str) -> list[dict[str, Any]]:
        """The metadata of every Secret in `namespace` (never their data)."""
        ...

    def list_request_names(self, label_selector: str) -> list[tuple[str, str]]:
        """(namespace, name) of every provider-http Request with these labels."""
        ...

    def delete_secret(self, namespace: str, name: str, uid: str, resource_version: str) -> None:
        """Delete exactly the Secret that was listed (uid and resourceVersion preconditions)."""
        ...

    def emit_event(self, target: dict[str, Any], event: Event) -> None:
        """Record an Event about `target` (an object or an object reference)."""
        ...

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Lease, or None."""
        ...

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Lease (KubeConflictError if it exists)."""
        ...

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a Lease (KubeConflictError on a stale resourceVersion)."""
        ...


def api_client(kubeconfig: str | None = None, context: str | None = None) -> k8s.ApiClient:
    """An ApiClient: in-cluster config inside a pod, else the kubeconfig."""
    configuration = k8s.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        load_incluster: Callable[..., None] = k8s_config.load_incluster_config
        load_incluster(client_configuration=configuration)
    else:
        load_kubeconfig: Callable[..., None] = k8s_config.load_kube_config
        load_kubeconfig(config_file=kubeconfig, context=context, client_configuration=configuration)
    # Retries are the poller's job (with backoff), not urllib3's.
    configuration.retries = False
    return k8s.ApiClient(configuration)


class KubeCluster:
    """`Cluster` over a kubernetes `ApiClient`."""

    def __init__(
        self,
        client: k8s.ApiClient,
        timeout: float = 10.0,
        plurals: tuple[str, ...] = (PLURAL, LEGACY_PLURAL),
    ) -> None:
        """Use `client` with a per-request `timeout` in seconds."""
        self._api = KubeApi(client, timeout)
        self._plurals = plurals
        self.writes = 0

    def list_virtualkeys(self) -> list[tuple[XRRef, dict[str, Any]]]:
        """Every VirtualKey of both kinds."""
        found: list[tuple[XRRef, dict[str, Any]]] = []
        for plural in self._plurals:
            found.extend(self._xrs(plural))
        return found

    def _xrs(self, plural: str) -> list[tuple[XRRef, dict[str, Any]]]:
        """Every object of one of our kinds, with its reference."""
        items = self._api.list(f"/apis/{GROUP}/{VERSION}/{plural}", f"list {plural}")
        return [(XRRef.of(plural, item), item) for item in items]

    def list_policies(self) -> list[dict[str, Any]]:
        """Every TenancyPolicy; none when its CRD is not installed (nothing is granted)."""
        return self._api.list(f"/apis/{POLICY_API_VERSION}/tenancypolicies", "list tenancypolicies")

    def namespace_labels(self) -> dict[str, dict[str, str]]:
        """Each Namespace's labels, by name."""
        found: dict[str, dict[str, str]] = {}
        for item in self._api.list("/api/v1/namespaces", "list namespaces"):
            meta = item.get("metadata") or {}
            labels = meta.get("labels") or {}
            found[str(meta.get("name", ""))] = {
                str(k): v for k, v in labels.items() if isinstance(v, str)
            }
        return found

    def list_accounts(self) -> list[tuple[XRRef, dict[str, Any]]]:
        """Every User and Team: v2 XRs, legacy XRs and claims; none where not installed."""
        found: list[tuple[XRRef, dict[str, Any]]] = []
        for plural in ACCOUNT_PLURALS:
            try:
                found.extend(self._xrs(plural))
            except KubePermanentError as e:
                # An RBAC from before a kind was added: the other kinds go on.
                log.warning("%s; its status is not updated", redact(e))
        return found

    def get_virtualkey(self, ref: XRRef) -> dict[str, Any]:
        """One VirtualKey, read again (after a conflict)."""
        result: dict[str, Any] = self._api.request("GET", ref.path(), f"get {ref}")
        return result

    def patch_status(self, ref: XRRef, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch `ref`'s status subresource as the poller's field manager."""
        self.writes += 1
        result: dict[str, Any] = self._api.request(
            "PATCH",
            ref.path("status"),
            f"patch {ref} status",
            [("fieldManager", FIELD_MANAGER)],
            patch,
        )
        return result

    def read_secret_value(self, namespace: str, name: str, key: str) -> str:
        """The decoded value of one data key of a Secret."""
        what = f"Secret {namespace}/{name}"
        secret = self._api.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}", what)
        encoded = (secret.get("data") or {}).get(key)
        if not isinstance(encoded, str):
            msg = f"{what} has no data key {key!r}"
            raise KubePermanentError(msg)
        try:
            return base64.b64decode(encoded, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            msg = f"{what}: data key {key!r} is not valid base64 text"
            raise KubePermanentError(msg) from None

    def list_secret_metadata(self, namespace: str) -> list[dict[str, Any]]:
        """The metadata of every Secret in `namespace`; their data is never asked for."""
        items = self._api.list(
            f"/api/v1/namespaces/{namespace}/secrets",
            f"list Secrets in {namespace}",
            missing_ok=False,
            accept=METADATA_ONLY,
        )
        return [i["metadata"] for i in items if isinstance(i.get("metadata"), dict)]

    def list_request_names(self, label_selector: str) -> list[tuple[str, str]]:
        """(namespace, name) of every provider-http Request with these labels, all namespaces."""
        items = self._api.list(
            REQUEST_PATH,
            "list requests",
            missing_ok=False,
            selector=label_selector,
            accept=METADATA_ONLY,
        )
        found = []
        for item in items:
            meta = item.get("metadata")
            if not isinstance(meta, dict):
                msg = "list requests: an item without metadata"
                raise KubeTemporaryError(msg)
            namespace, name = meta.get("namespace"), meta.get("name")
            if not isinstance(namespace, str) or not isinstance(name, str):
                msg = "list requests: an item without namespace or name"
                raise KubeTemporaryError(msg)
            found.append((namespace, name))
        return found

    def delete_secret(self, namespace: str, name: str, uid: str, resource_version: str) -> None:
        """Delete the Secret only if it is still the object with this uid and resourceVersion."""
        self._api.request(
            "DELETE",
            f"/api/v1/namespaces/{namespace}/secrets/{name}",
            f"delete Secret {namespace}/{name}",
            body={
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "preconditions": {"uid": uid, "resourceVersion": resource_version},
            },
        )

    def emit_event(self, target: dict[str, Any], event: Event) -> None:
        """Create a core/v1 Event about `target` (an object or a reference)."""
        body = event_body(target, event, datetime.now(UTC))
        namespace = body["metadata"]["namespace"]
        self._api.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/events",
            f"create event {event.reason}",
            body=body,
        )

    def _lease_path(self, namespace: str, name: str = "") -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{path}/{name}" if name else path

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or None when it does not exist."""
        try:
            lease: dict[str, Any] = self._api.request(
                "GET", self._lease_path(namespace, name), f"get Lease {namespace}/{name}"
            )
        except KubeNotFoundError:
            return None
        return lease

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create the Lease."""
        lease: dict[str, Any] = self._api.request(
            "POST", self._lease_path(namespace), f"create Lease in {namespace}", body=body
        )
        return lease

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the Lease; its resourceVersion makes this a compare-and-swap."""
        lease: dict[str, Any] = self._api.request(
            "PUT", self._lease_path(namespace, name), f"update Lease {namespace}/{name}", body=body
        )
        return lease


def event_body(target: dict[str, Any], event: Event, now: datetime) -> dict[str, Any]:
    """A core/v1 Event about `target` (an object or an object reference)."""
    meta = target.get("metadata") or {}
    involved = {
        "apiVersion": target.get("apiVersion"),
        "kind": target.get("kind"),
        "name": meta.get("name") or target.get("name"),
        "namespace": meta.get("namespace") or target.get("namespace"),
        "uid": meta.get("uid") or target.get("uid"),
    }
    involved = {k: v for k, v in involved.items() if v}
    when = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{involved.get('name', 'virtualkey')}.",
            "namespace": involved.get("namespace") or "default",
        },
        "involvedObject": involved,
        "reason": event.reason,
        "message": redact(event.message, limit=1000),
        "type": event.type,
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": os.environ.get("POD_NAME", FIELD_MANAGER),
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }
