"""What composing one VirtualKey's key reads and writes, shared by its phases. Pure.

- `KeyContext`: the observed state, the spec, the grant and the settings,
  and what every phase builds from them: the key Secrets, the key Requests
  (`request(token, ...)`) and each key's state and memory.
- `Flow`: what a phase composes; `request_resource(token)`: the composed
  resource name of a key's Request; `observed_requests(observed)`: the
  observed key Requests (kind-checked, bounded).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from function import provenance
from function.composed import Desired
from function.keys.memory import KeyMemory, remember
from function.keys.request import build_request, created_once, key_payload
from function.keys.secrets import key_from_secret_data
from function.provider_http.answers import is_request
from function.provider_http.readiness import (
    CREATE_FAILED,
    CREATE_SETTLED,
    KeyState,
    key_state,
    unsettled_create,
)
from function.provider_http.request import Place
from function.units import money

if TYPE_CHECKING:
    from function.composed import Owner
    from function.input import Input
    from function.keys.spec import VirtualKeySpec
    from function.tenancy.decide import Authorization

REQUEST_RESOURCE_PREFIX = "request-"
# A VirtualKey has at most three key Requests at once (current, new, retiring);
# only the function composes them, and this bounds what a run reads anyway.
MAX_KEY_REQUESTS = 16


@dataclass(frozen=True)
class Flow:
    """The key part of one VirtualKey's desired state."""

    token: str  # the key the key Secret holds after this run
    state: KeyState
    resources: dict[str, Desired]
    status: dict[str, Any]
    events: list[str] = field(default_factory=list)
    revisit_at: datetime | None = None
    replace_holder: frozenset[str] = frozenset()  # tokens of keys to delete for the alias
    warnings: list[str] = field(default_factory=list)


def request_resource(token: str) -> str:
    """The composed resource name of the Request of key `token`."""
    return f"{REQUEST_RESOURCE_PREFIX}{token[:10]}"


def observed_requests(observed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The observed key Requests, by composed resource name (kind-checked, bounded)."""
    found = {
        n: r for n, r in observed.items() if n.startswith(REQUEST_RESOURCE_PREFIX) and is_request(r)
    }
    return dict(sorted(found.items())[:MAX_KEY_REQUESTS])


def secret_key(observed: dict[str, dict[str, Any]], name: str) -> str | None:
    """The key an observed Secret holds, or None (absent, not a Secret, malformed)."""
    secret = observed.get(name)
    if not isinstance(secret, dict) or secret.get("kind") != "Secret":
        return None
    return key_from_secret_data(secret.get("data"))


@dataclass(frozen=True)
class KeyContext:
    """What every step of composing one VirtualKey reads."""

    observed: dict[str, dict[str, Any]]
    owner: Owner
    spec: VirtualKeySpec
    granted: Authorization
    settings: Input
    now: datetime
    labels: dict[str, str]
    exposed: frozenset[str] = frozenset()  # tokens of keys once stored unmasked

    @property
    def secret_name(self) -> str:
        """The key Secret the tenant's clients read."""
        return f"{self.owner.base_name}-litellm-key"

    @property
    def next_secret_name(self) -> str:
        """Where a rotation's new key waits until it exists on the proxy."""
        return f"{self.owner.base_name}-litellm-key-next"

    @property
    def place(self) -> Place:
        """Where every Request of this VirtualKey goes and how it reaches the proxy."""
        return self.settings.place(self.owner.namespace, self.granted.connection, self.labels)

    def observed_request(self, token: str) -> dict[str, Any] | None:
        """The observed Request of key `token`, if it is one of ours."""
        found = self.observed.get(request_resource(token))
        return found if is_request(found) else None

    def secret(self, name: str, key: str) -> dict[str, Any]:
        """A Secret holding `key` and the proxy's URL."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.owner.namespace, "labels": self.labels},
            "type": "Opaque",
            "data": {
                "key": base64.b64encode(key.encode()).decode(),
                "baseUrl": base64.b64encode(self.granted.connection.base_url.encode()).decode(),
            },
        }

    def state_of(self, token: str) -> KeyState:
        """The state of key `token`, read from its observed Request."""
        return key_state(self.observed_request(token), self.granted.connection, self.spec.key_alias)

    def request(  # noqa: PLR0913 - each argument is one independent fact.
        self,
        token: str,
        *,
        key_secret: str,
        ready: bool,
        carried: Decimal | None = None,
        overrides: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        update_only: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The Request of the key `token`, as build_request makes it for this VirtualKey."""
        observed_request = self.observed_request(token)
        payload = key_payload(
            self.spec,
            self.granted,
            token,
            # Once LiteLLM has the key, provider-http may never create it again.
            created=created_once(observed_request) or ready,
            provenance=provenance.stamp(
                self.owner.namespace, self.owner.virtualkey, self.granted.policy
            ),
            carried_spend=None if carried is None else money(carried),
            overrides=overrides,
            update_only=update_only,
        )
        body = build_request(
            name=f"{self.owner.base_name}-{token[:8]}",
            place=self.place,
            payload=payload,
            key_secret=key_secret,
            mask_namespace=self.settings.mask_secret_namespace,
        )
        notes = {**(annotations or {}), **remember(exposed=token in self.exposed)}
        settled = unsettled_create(observed_request)
        if settled is not None:
            notes[CREATE_FAILED] = notes[CREATE_SETTLED] = settled
        if notes:
            body["metadata"]["annotations"] = notes
        return body

    def handled_trigger(self, token: str) -> int | None:
        """The spec.rotation.trigger key `token` was made for (its Request remembers it).

        A Request that remembers none (a new key, or one made before triggers
        were remembered there) takes the spec's: a trigger starts no rotation
        of a key just made.
        """
        remembered = self.memory(token).trigger
        if remembered is not None:
            return remembered
        return self.spec.rotation.trigger if self.spec.rotation is not None else None

    def memory(self, token: str) -> KeyMemory:
        """What the Request of key `token` remembers (function.keys.memory)."""
        return KeyMemory.of(self.observed_request(token))
