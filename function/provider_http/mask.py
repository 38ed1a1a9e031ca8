"""Where provider-http hides the raw key `/key/generate` echoes: a Secret tenants cannot touch.

provider-http stores every answer in the Request's status, masking an
injected value as `{{ <secret>:<namespace>:<key> }}`; every later call
resolves that placeholder first, and fails while the Secret is missing.
Were the Secret in the tenant's namespace, deleting it right after CREATE
would leave the Request unable to make any call again, its REMOVE included:
the key would outlive its VirtualKey. So the Secret lives in a namespace
of the platform's (`Input.maskSecretNamespace`, default `crossplane-system`),
named `litellm-generated-<digest of the Request's namespace and name>`. A Request
cannot own a Secret in another namespace, so the poller deletes the mask
Secrets whose Request is gone (`function.poller`, docs/poller.md). It has no
labels: provider-http runs label values as jq.

- `secret_name(namespace, request)`: the Secret's name, unique per Request.
"""

from __future__ import annotations

import hashlib

DEFAULT_NAMESPACE = "crossplane-system"
PREFIX = "litellm-generated-"


def secret_name(namespace: str, request: str) -> str:
    """The mask Secret of Request `namespace/request`: a digest, so any length fits."""
    digest = hashlib.sha256(f"{namespace}/{request}".encode()).hexdigest()[:40]
    return f"{PREFIX}{digest}"
