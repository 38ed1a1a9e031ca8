"""The function's input, set by the platform team in the Composition.

`Input` (`litellm.fn.crossplane.io/v1beta1`, kind `Input`, CRD in
`package/input/`): provider-http's config, its timeout, and where the mask
Secrets live. `parse_input(raw)` validates it (absent means all defaults).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from function.provider_http.mask import DEFAULT_NAMESPACE as MASK_NAMESPACE
from function.provider_http.request import Place
from function.tenancy.connection import Connection
from function.validation import DnsLabel, DnsSubdomain, StrictModel, memoized_by_json, validated


class ProviderConfigRef(StrictModel):
    """The provider-http (Cluster)ProviderConfig the Request uses."""

    kind: Literal["ClusterProviderConfig", "ProviderConfig"] = "ClusterProviderConfig"
    name: DnsSubdomain = "default"


_MOVED = {"instance", "allowedMasterKeyNamespaces"}


class Input(StrictModel):
    """The function's input (`litellm.fn.crossplane.io/v1beta1`, kind Input)."""

    api_version: str | None = Field(default=None, alias="apiVersion")
    kind: str | None = None
    metadata: dict[str, Any] | None = None
    provider_config_ref: ProviderConfigRef = Field(
        default_factory=ProviderConfigRef, alias="providerConfigRef"
    )
    # provider-http's per-call HTTP timeout (spec.forProvider.waitTimeout).
    request_timeout: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,3}(s|m)$")] = Field(
        default="30s", alias="requestTimeout"
    )
    # Where provider-http keeps the Secrets that mask /key/generate's echo of a
    # key (function.provider_http.mask): a namespace tenants cannot write.
    mask_secret_namespace: DnsLabel = Field(default=MASK_NAMESPACE, alias="maskSecretNamespace")

    def place(self, namespace: str, connection: Connection, labels: dict[str, str]) -> Place:
        """Where one object's Requests go, as this input configures provider-http."""
        return Place(
            namespace,
            connection,
            self.provider_config_ref.model_dump(),
            self.request_timeout,
            labels,
        )

    @model_validator(mode="before")
    @classmethod
    def _moved_to_policy(cls, value: Any) -> Any:
        # These lived in the input before the TenancyPolicy; left in place they
        # would suggest a second, drifting copy of the platform's rules.
        moved = sorted(set(value) & _MOVED) if isinstance(value, dict) else []
        if moved:
            msg = (
                f"input.{moved[0]}: moved to the TenancyPolicy (spec.instances and "
                "spec.rules, see package/policy/); remove it from the Composition's input"
            )
            raise ValueError(msg)
        return value


@memoized_by_json(max_bytes=1024 * 1024)
def parse_input(raw: Any) -> Input:
    """Validate the function input (absent means all defaults)."""
    if raw is None or raw == {}:
        return Input()
    return validated(
        Input,
        raw,
        "input",
        not_object="input: must be an object of kind Input",
        fix=" (fix the function input in the Composition)",
    )
