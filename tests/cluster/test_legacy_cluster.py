"""Legacy claims on the real control plane, with examples/legacy verbatim.

The legacy XRD defines the same `virtualkeys.auth.litellm.ai` as the v2 one, so
this module swaps them: it deletes the v2 XRD, installs the legacy one for its
test, and puts the v2 one back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import Plane, condition, install_xrd, key_info, poll_once, until
from tests.conftest import ACCOUNTS, INSTALL, LEGACY, Proxy, chat

pytestmark = pytest.mark.cluster


KINDS = ("", "user-", "team-")
# Where each kind's v2 XRD and Composition are: the VirtualKey's with the install.
V2 = {"": INSTALL, "user-": ACCOUNTS, "team-": ACCOUNTS}


@pytest.fixture
def legacy(platform: Plane) -> Iterator[Plane]:
    try:
        for kind in KINDS:
            install_xrd(
                platform,
                LEGACY / f"{kind}definition.yaml",
                LEGACY / f"{kind}composition.yaml",
            )
        yield platform
    finally:
        for kind in KINDS:
            install_xrd(
                platform, V2[kind] / f"{kind}definition.yaml", V2[kind] / f"{kind}composition.yaml"
            )
        for plural in ("xvirtualkeys", "xusers", "xteams"):
            platform.kubectl(
                "delete", "composition", f"{plural}.auth.litellm.ai", "--ignore-not-found"
            )


def test_a_legacy_claim_gets_its_key_and_its_xrs_status(
    legacy: Plane,
    proxy: Proxy,
    poller_kubeconfig: Path,
) -> None:
    claim_file = LEGACY / "virtualkey.yaml"
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


def test_legacy_user_and_team_claims_take_the_same_yaml(
    legacy: Plane, proxy: Proxy, poller_kubeconfig: Path
) -> None:
    """examples/accounts/user.yaml and team.yaml, verbatim, as claims: the user's key, the team."""
    files = [ACCOUNTS / "user.yaml", ACCOUNTS / "team.yaml"]
    with proxy.admin() as admin:  # what an earlier run may have left
        admin.post("/key/delete", json={"key_aliases": ["alice-key"]})
        admin.post("/team/delete", json={"team_ids": ["team-a.research"]})
        admin.post("/user/delete", json={"user_ids": ["team-a.alice"]})
    for path in files:
        legacy.kubectl("apply", "-f", str(path))
    try:

        def ready(kind: str, name: str) -> dict[str, object] | None:
            claim = legacy.get(kind, name, "team-a")
            return claim if condition(claim, "Ready").get("status") == "True" else None

        user = until(lambda: ready("user", "alice"), "the User claim to be Ready", 240)
        assert user["status"]["userID"] == "team-a.alice"
        until(lambda: ready("virtualkey", "alice-key"), "the user's VirtualKey claim", 240)
        key = legacy.secret_value("team-a", "alice-key-litellm-key", "key")
        assert chat(proxy, key) == 200
        until(lambda: ready("team", "research"), "the Team claim to be Ready", 240)

        def spent() -> bool:
            assert poll_once(poller_kubeconfig).returncode == 0
            found = legacy.get("team", "research", "team-a") or {}
            members = (found.get("status") or {}).get("members")
            return members == [{"userID": "team-a.alice", "role": "user"}]

        until(spent, "the team's members on the claim", 90)
    finally:
        for path in reversed(files):
            legacy.kubectl("delete", "-f", str(path), "--wait=true", check=False)

    def gone() -> bool:
        with proxy.admin() as admin:
            return admin.get("/user/info", params={"user_id": "team-a.alice"}).status_code == 404

    until(gone, "the user to be deleted on the proxy", 180)
