"""A LiteLLM proxy's URL and where its master key lives, and which URLs are safe.

Shared by the function (which writes the URL and a secret placeholder into
the Request) and the poller (which groups keys by instance and reads the
master key itself). Which connection a VirtualKey gets is decided by
`function.tenancy.decide` from the platform's policy; this module only says what
a connection is and checks URLs:

- `ConnectionRef`, `InstanceRef`, `SecretKeyRef`: what every kind's spec, and a
  TenancyPolicy rule, write to name a proxy.
- `Connection`, `MasterKeyRef`: a resolved connection. The master key's
  value never passes through here: only where it lives.
- `checked_platform_url(url)`: a URL the platform declared for an instance.
- `checked_tenant_url(url, allow_loopback=...)`: a URL a tenant gave for a
  proxy of its own, which provider-http will call from inside the cluster:
  http or https, no credentials, no path, and never a link-local or
  metadata address (nor loopback unless the platform allows it).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from pydantic import Field, model_validator

from function.validation import DnsLabel, DnsSubdomain, InvalidInputError, SecretKey, StrictModel

_MAX_PORT = 65535
_MAX_URL = 2048
EXPECTED_URL = (
    "an http:// or https:// URL with a host and no query, e.g. http://litellm.litellm:4000"
)
# Cloud metadata services, by address and by name. 169.254.0.0/16 and
# fe80::/10 are refused whole as link-local; these are the ones outside.
_METADATA_ADDRESSES = (ipaddress.ip_address("fd00:ec2::254"),)
_METADATA_NAMES = ("metadata", "metadata.google.internal", "instance-data", "metadata.azure.com")
# A host that is only digits, dots and hex markers is an address in some
# notation (2130706433, 0x7f.1, 127.1, 017.0.0.1) that resolvers differ on.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*\.?$", re.IGNORECASE)


@dataclass(frozen=True)
class MasterKeyRef:
    """The Secret data key that holds a proxy's master key."""

    name: str
    namespace: str
    key: str

    def placeholder(self) -> str:
        """provider-http's secret placeholder for this value."""
        return f"{{{{ {self.name}:{self.namespace}:{self.key} }}}}"


@dataclass(frozen=True)
class Connection:
    """A resolved connection: base URL without a trailing slash, and the master key's place."""

    base_url: str
    master_key: MasterKeyRef

    @property
    def instance_id(self) -> str:
        """A stable name for the instance: its URL and master-key Secret."""
        ref = self.master_key
        return f"{self.base_url} ({ref.namespace}/{ref.name})"


def _parts(url: str, field: str) -> SplitResult:
    """The URL's parts, after the checks every LiteLLM URL must pass."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port <= _MAX_PORT
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    problem = None
    if len(url) > _MAX_URL:
        problem = f"is longer than {_MAX_URL} characters"
    elif parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        problem = "is not a valid http:// or https:// URL with a host"
    elif parts.query or parts.fragment or any(c in url for c in "{} \t\r\n\\"):
        problem = "must not have a query, fragment, braces, backslashes or spaces"
    elif parts.username is not None or parts.password is not None or "@" in parts.netloc:
        problem = "must not carry credentials; the master key comes from its Secret"
    if problem:
        raise InvalidInputError(_message(field, url, problem))
    return parts


def _message(field: str, url: str, problem: str) -> str:
    fix = "; fix the TenancyPolicy" if field.startswith("spec.instances") else ""
    return f"{field}: {problem} (got {url[:80]!r}); expected {EXPECTED_URL}{fix}"


def checked_platform_url(url: str, field: str = "spec.instances[].url") -> str:
    """A platform instance's URL, without a trailing slash (raises InvalidInputError)."""
    _parts(url, field)
    return url.rstrip("/")


def checked_tenant_url(
    url: str, *, allow_loopback: bool, field: str = "spec.connectionRef.url"
) -> str:
    """A tenant proxy's URL, without a trailing slash (raises InvalidInputError)."""
    parts = _parts(url, field)
    if parts.path not in ("", "/"):
        problem = "must be the proxy's root, with no path; the function adds /key/... itself"
        raise InvalidInputError(_message(field, url, problem))
    refused = _refused_host((parts.hostname or "").lower(), allow_loopback=allow_loopback)
    if refused:
        raise InvalidInputError(_message(field, url, refused))
    return url.rstrip("/")


_LOOPBACK = "is a loopback address, which the platform has not allowed for tenant proxies"


def _refused_host(host: str, *, allow_loopback: bool) -> str | None:
    """Why provider-http must not call this host from inside the cluster, or None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _refused_name(host, allow_loopback=allow_loopback)
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    address = mapped or address
    problem = None
    if address.is_link_local or address in _METADATA_ADDRESSES:
        problem = "is a link-local or cloud metadata address"
    elif address.is_unspecified or address.is_multicast:
        problem = "is not a unicast address"
    elif address.is_loopback and not allow_loopback:
        problem = _LOOPBACK
    return problem


def _refused_name(host: str, *, allow_loopback: bool) -> str | None:
    """Why a host name (not an address literal) is refused, or None."""
    name = host.rstrip(".")
    if _NUMERIC_HOST.fullmatch(host):
        return "is a numeric host that is not a plain dotted IPv4 address; write it a.b.c.d"
    if name in _METADATA_NAMES:
        return "names a cloud metadata service"
    if (name == "localhost" or name.endswith(".localhost")) and not allow_loopback:
        return _LOOPBACK
    return None


class InstanceRef(StrictModel):
    """A LiteLLM instance, by the name a TenancyPolicy declares it under."""

    name: DnsLabel
    namespace: DnsLabel


class SecretKeyRef(StrictModel):
    """One data key of one Secret."""

    name: DnsSubdomain
    namespace: DnsLabel | None = None
    key: SecretKey | None = None


class ConnectionRef(StrictModel):
    """Where the proxy is: an instance, or an explicit URL and master-key Secret."""

    instance_ref: InstanceRef | None = Field(default=None, alias="instanceRef")
    url: str | None = None
    master_key_secret_ref: SecretKeyRef | None = Field(default=None, alias="masterKeySecretRef")

    @model_validator(mode="after")
    def _one_form(self) -> ConnectionRef:
        explicit = self.url is not None or self.master_key_secret_ref is not None
        if self.instance_ref is not None and explicit:
            msg = "set either instanceRef or url with masterKeySecretRef, not both"
            raise ValueError(msg)
        if self.instance_ref is None and not (
            self.url is not None and self.master_key_secret_ref is not None
        ):
            msg = "set instanceRef {name, namespace}, or both url and masterKeySecretRef"
            raise ValueError(msg)
        return self
