"""Legacy claims on the real control plane, with examples/legacy verbatim.

The legacy XRD defines the same `virtualkeys.auth.litellm.ai` as the v2 one, so
this module swaps them: it deletes the v2 XRD, installs the legacy one for its
test, and puts the v2 one back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import Plane, chat, condition, install_xrd, key_info, poll_once, until
from tests.conftest import EXAMPLES, Proxy

pytestmark = pytest.mark.cluster


@pytest.fixture
def legacy(platform: Plane) -> Iterator[Plane]:
    try:
        install_xrd(
            platform,
            EXAMPLES / "legacy" / "definition.yaml",
            EXAMPLES / "legacy" / "composition.yaml",
        )
        yield platform
    finally:
        install_xrd(platform, EXAMPLES / "definition.yaml", EXAMPLES / "composition.yaml")
        platform.kubectl(
            "delete", "composition", "xvirtualkeys.auth.litellm.ai", "--ignore-not-found"
        )


def test_a_legacy_claim_gets_its_key_and_its_xrs_status(
    legacy: Plane,
    proxy: Proxy,
    poller_kubeconfig: Path,
) -> None:
    claim_file = EXAMPLES / "legacy" / "virtualkey.yaml"
    legacy.kubectl("apply", "-f", str(claim_file))
    try:

        def ready() -> dict[str, object] | None:
            claim = legacy.get("virtualkey", "example-service", "team-a")
            return claim if condition(claim, "Ready").get("status") == "True" else None

        claim = until(ready, "the claim to be Ready", 180)
        status = claim["status"]
        assert status["keySecretRef"] == "example-service-litellm-key"
        key = legacy.secret_value("team-a", "example-service-litellm-key", "key")
        assert chat(proxy, key) == 200
        (xr,) = legacy.items("xvirtualkeys.auth.litellm.ai")
        assert xr["status"]["tokenHash"] == status["tokenHash"]
        # The poller writes the XR once; Crossplane copies it to the claim.

        def spent() -> bool:
            assert poll_once(poller_kubeconfig).returncode == 0
            found = legacy.get("virtualkey", "example-service", "team-a") or {}
            return float((found.get("status") or {}).get("currentSpend") or 0) > 0

        until(spent, "the spend on the claim", 90)
    finally:
        legacy.kubectl("delete", "-f", str(claim_file), "--wait=true", check=False)
    token = str(status["tokenHash"])
    until(lambda: key_info(proxy, token).get("status") == "deleted", "REMOVE on the proxy", 180)
