"""Which LiteLLM proxy a VirtualKey talks to, and where its master key is.

Shared by the function (which writes the URL and a secret placeholder into
the Request) and the poller (which groups keys by instance and reads the
master key itself), so both always agree on the same rules:

- `resolve(ref, namespace, conventions, allowed_namespaces)` -> `Connection`
- `Connection.instance_id` names an instance for grouping, metrics and logs.

The master key's value never passes through here: only where it lives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from function.model import (
    DNS_SUBDOMAIN_PATTERN,
    ConnectionRef,
    InstanceConventions,
    InvalidInputError,
)

_MAX_PORT = 65535
_MAX_URL = 2048


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


def resolve(
    ref: ConnectionRef,
    namespace: str,
    conventions: InstanceConventions,
    allowed_namespaces: tuple[str, ...] | list[str] = (),
) -> Connection:
    """Resolve a connectionRef of a VirtualKey living in `namespace`.

    Raises:
        InvalidInputError: with a message that names the field and the fix.
    """
    if ref.instance_ref is not None:
        inst = ref.instance_ref
        url = conventions.url_template.format(name=inst.name, namespace=inst.namespace)
        secret = conventions.master_key_secret_name.format(name=inst.name, namespace=inst.namespace)
        if re.fullmatch(DNS_SUBDOMAIN_PATTERN, secret) is None:
            msg = (
                f"input.instance.masterKeySecretName: gives {secret[:80]!r} for instance "
                f"{inst.name!r}, which is not a valid Secret name; fix the function input "
                "in the Composition"
            )
            raise InvalidInputError(msg)
        return Connection(
            base_url=_checked_url(url, "input.instance.urlTemplate"),
            master_key=MasterKeyRef(
                name=secret, namespace=inst.namespace, key=conventions.master_key_secret_key
            ),
        )
    # The model guarantees the explicit form is complete when instanceRef is absent.
    assert ref.url is not None  # noqa: S101
    assert ref.master_key_secret_ref is not None  # noqa: S101
    secret_ref = ref.master_key_secret_ref
    secret_namespace = secret_ref.namespace or namespace
    if secret_namespace != namespace and secret_namespace not in allowed_namespaces:
        msg = (
            f"spec.connectionRef.masterKeySecretRef.namespace: {secret_namespace!r} is not "
            f"allowed; a VirtualKey in {namespace!r} may read a master key only from its own "
            "namespace or from the function input's allowedMasterKeyNamespaces "
            f"({', '.join(allowed_namespaces) or 'none'}). Use instanceRef, or ask the "
            "platform team to allow that namespace"
        )
        raise InvalidInputError(msg)
    return Connection(
        base_url=_checked_url(ref.url, "spec.connectionRef.url"),
        master_key=MasterKeyRef(
            name=secret_ref.name,
            namespace=secret_namespace,
            key=secret_ref.key or conventions.master_key_secret_key,
        ),
    )


def _checked_url(url: str, field: str) -> str:
    expected = (
        "an http:// or https:// URL with a host and no query, e.g. http://litellm.litellm:4000"
    )
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
        problem = "is not a valid URL"
    elif parts.query or parts.fragment or "{" in url or "}" in url or " " in url:
        problem = "must not have a query, fragment, braces or spaces"
    elif parts.username or parts.password:
        problem = "must not carry credentials; the master key comes from its Secret"
    if problem:
        fix = "; fix the function input in the Composition" if field.startswith("input.") else ""
        msg = f"{field}: {problem} (got {url[:80]!r}); expected {expected}{fix}"
        raise InvalidInputError(msg)
    return url.rstrip("/")
