"""Which tenant proxy URLs pass (`function.tenancy.connection.checked_tenant_url`).

A tenant's own proxy gets the master key it names: no metadata service,
link-local or loopback address, credentials, path or query.
"""

from __future__ import annotations

import pytest

from function.tenancy.connection import checked_tenant_url
from function.validation import InvalidInputError

# --- tenant proxy URLs --------------------------------------------------------------------------

URLS: dict[str, tuple[str, bool, str | None]] = {
    # name: (url, allow_loopback, refusal fragment or None for accepted)
    "a cluster service": ("http://litellm.team-b.svc.cluster.local:4000", False, None),
    "https with a trailing slash": ("https://llm.example.com/", False, None),
    "a routable IPv4 address": ("http://10.0.0.7:4000", False, None),
    "loopback when allowed": ("http://127.0.0.1:4000", True, None),
    "localhost when allowed": ("http://localhost:4000", True, None),
    "ftp": ("ftp://llm.example.com", False, "not a valid http"),
    "userinfo": ("http://admin:pw@llm.example.com", False, "credentials"),
    "userinfo without a password": ("http://admin@llm.example.com", False, "credentials"),
    "a path": ("http://llm.example.com/v1", False, "no path"),
    "a path to the key API": ("http://llm.example.com/key/generate", False, "no path"),
    "a query": ("http://llm.example.com/?x=1", False, "query"),
    "a backslash": ("http://llm.example.com\\@evil.example.com", False, "backslashes"),
    "the metadata address": ("http://169.254.169.254/", False, "link-local"),
    "link-local": ("http://169.254.10.1:4000", False, "link-local"),
    "link-local even with loopback allowed": ("http://169.254.169.254", True, "link-local"),
    "AWS IPv6 metadata": ("http://[fd00:ec2::254]/", False, "metadata"),
    "IPv6 link-local": ("http://[fe80::1]:4000", False, "link-local"),
    "IPv4-mapped metadata": ("http://[::ffff:169.254.169.254]/", False, "link-local"),
    "GCP metadata by name": ("http://metadata.google.internal/", False, "metadata service"),
    "metadata by short name": ("http://metadata/", False, "metadata service"),
    "loopback": ("http://127.0.0.1:4000", False, "loopback"),
    "loopback elsewhere in 127/8": ("http://127.8.9.10:4000", False, "loopback"),
    "IPv6 loopback": ("http://[::1]:4000", False, "loopback"),
    "localhost": ("http://localhost:4000", False, "loopback"),
    "a .localhost name": ("http://api.localhost:4000", False, "loopback"),
    "decimal address": ("http://2130706433:4000", False, "numeric host"),
    "hex address": ("http://0x7f000001/", False, "numeric host"),
    "short dotted address": ("http://127.1:4000", False, "numeric host"),
    "octal-looking address": ("http://0177.0.0.1/", False, "numeric host"),
    "the unspecified address": ("http://0.0.0.0:4000", False, "not a unicast address"),
}


@pytest.mark.parametrize("name", sorted(URLS))
def test_tenant_proxy_url(name: str) -> None:
    url, loopback, refusal = URLS[name]
    if refusal is None:
        assert checked_tenant_url(url, allow_loopback=loopback) == url.rstrip("/")
        return
    with pytest.raises(InvalidInputError) as refused:
        checked_tenant_url(url, allow_loopback=loopback)
    assert "spec.connectionRef.url" in str(refused.value)
    assert refusal in str(refused.value)
