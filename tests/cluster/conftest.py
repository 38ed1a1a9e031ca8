"""The real control plane for the cluster suite, or a one-line skip.

`tools/cluster/cluster.sh up` starts etcd, kube-apiserver, kube-controller-manager,
Crossplane core, provider-http and the function, and prints `export KUBECONFIG=...
CLUSTER_STATE_DIR=...`. Without them the suite is skipped; with CLUSTER_REQUIRED=1
(as .ci/run sets) a missing control plane fails the run instead.

The platform team's part is applied once per session, verbatim from
examples/install/, examples/accounts/ and package/: the namespaces, the
TenancyPolicy CRD and policy, Crossplane's RBAC, the ProviderConfig, the XRDs
and the Compositions, and the instance's master-key Secret (with the real
proxy's key, as the LiteLLM Operator would make it).

**DNS.** The seed's instance is `litellm-example-service.litellm.svc.cluster.local`
on port 4000, a name no machine here resolves. The suite patches one value, the
instance's `url` in the shipped TenancyPolicy, to the proxy up.sh started: that is
what a platform does for an instance that runs elsewhere, and it needs neither root
(for /etc/hosts) nor port 4000 free. Every VirtualKey stays verbatim.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ACCOUNTS, INSTALL, POLLER, ROOT, VIRTUALKEYS, Proxy, unavailable

SEED_ALIASES = ("example-service", "research-key")
TIMEOUT = 120.0

Obj = dict[str, Any]


@dataclass(frozen=True)
class Plane:
    """The running control plane: kubectl, objects, and its components."""

    kubeconfig: str
    state: Path
    bin: Path

    @property
    def env(self) -> dict[str, str]:
        path = f"{self.bin}:{os.environ.get('PATH', '')}"
        return {**os.environ, "KUBECONFIG": self.kubeconfig, "PATH": path}

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # noqa: S603 - our own kubectl, our own arguments.
            [str(self.bin / "kubectl"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=self.env,
            check=False,
        )
        if check and done.returncode != 0:
            msg = f"kubectl {' '.join(args)}: {done.stderr.strip()}"
            raise AssertionError(msg)
        return done

    def apply(self, *objects: Obj) -> None:
        self.kubectl("apply", "-f", "-", stdin="---\n".join(yaml.safe_dump(o) for o in objects))

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        where = ["-n", namespace] if namespace else []
        done = self.kubectl("get", kind, name, *where, "-o", "json", check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr:
                return None
            raise AssertionError(done.stderr)
        found: Obj = json.loads(done.stdout)
        return found

    def items(self, kind: str, namespace: str | None = None, selector: str = "") -> list[Obj]:
        where = ["-n", namespace] if namespace else ["-A"]
        extra = ["-l", selector] if selector else []
        done = self.kubectl("get", kind, *where, *extra, "-o", "json")
        found: list[Obj] = json.loads(done.stdout)["items"]
        return found

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        secret = self.get("secret", name, namespace)
        assert secret is not None, f"Secret {namespace}/{name} is missing"
        return base64.b64decode(secret["data"][key]).decode()

    def component(self, action: str, name: str) -> None:
        """Stop or start one component with tools/cluster/cluster.sh."""
        done = subprocess.run(  # noqa: S603
            ["bash", str(ROOT / "tools" / "cluster" / "cluster.sh"), action, name],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 2,
            env={**self.env, "CLUSTER_STATE_DIR": str(self.state)},
            check=False,
        )
        assert done.returncode == 0, done.stderr


def until(check: Callable[[], Any], what: str, seconds: float = TIMEOUT) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what} (last: {last!r:.300})")


def condition(obj: Obj | None, kind: str) -> Obj:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def keys_with_alias(proxy: Proxy, alias: str) -> list[Obj]:
    with proxy.admin() as admin:
        found = admin.get("/key/list", params={"key_alias": alias, "return_full_object": "true"})
    found.raise_for_status()
    keys: list[Obj] = found.json()["keys"]
    return keys


def key_info(proxy: Proxy, token: str) -> Obj:
    with proxy.admin() as admin:
        info: Obj = admin.get("/key/info", params={"key": token}).json()["info"]
    return info


# The v2 XRD is named after the XR (virtualkeys), the legacy one after its XR
# kind (xvirtualkeys); both serve the claim or XR kind as <plural>.auth.litellm.ai.
XRD_PAIRS = {
    plural: (f"{plural}.auth.litellm.ai", f"x{plural}.auth.litellm.ai")
    for plural in ("virtualkeys", "users", "teams")
}


def readme_block(heading: str) -> str:
    """The first bash block after `heading` in the README, as written."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index(heading) :]
    match = re.search(r"```bash\n(.*?)```", after, re.DOTALL)
    assert match is not None
    return match.group(1)


def run_readme_journey(plane: Plane, proxy: Proxy) -> subprocess.CompletedProcess[str]:
    """The README's whole journey, verbatim, on `plane`, with the proxy at `proxy.url`."""
    script = readme_block("The whole journey against your own cluster:")
    done = subprocess.run(  # noqa: S603 - the README's own lines.
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**plane.env, "LITELLM_URL": proxy.url},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hello from the mock gpt-4o" in done.stdout, done.stdout
    assert "KeyReady" in done.stdout  # kubectl describe
    assert 'virtualkey.auth.litellm.ai "example-service" deleted' in done.stdout
    return done


def install_xrd(plane: Plane, definition: Path, composition: Path) -> None:
    """Install `definition` (v2 or legacy), replacing the other one if it is there."""
    xrd = yaml.safe_load(definition.read_text())
    name = xrd["metadata"]["name"]
    plural = (xrd["spec"].get("claimNames") or xrd["spec"]["names"])["plural"]
    other = [x for x in XRD_PAIRS[plural] if x != name and plane.get("xrd", x) is not None]
    if other:
        plane.kubectl("delete", f"{plural}.auth.litellm.ai", "--all", "-A", "--wait=true")
        for found in other:
            plane.kubectl("delete", "xrd", found, "--wait=true", "--timeout=3m")
        until(lambda: all(plane.get("crd", x) is None for x in other), "the old CRDs to go", 180)
    plane.kubectl("apply", "-f", str(definition))
    plane.kubectl("wait", "--for", "condition=Established", f"xrd/{name}", "--timeout=3m")
    plane.kubectl("apply", "-f", str(composition))


def open_plane(kubeconfig_env: str, state_env: str, required_by: str, up: str) -> Plane:
    """The plane the two environment variables name, or a skip (a failure with `required_by`)."""
    kubeconfig, state = os.environ.get(kubeconfig_env), os.environ.get(state_env)
    if not kubeconfig or not state:
        unavailable(required_by, f'no control plane ({state_env}): run `eval "$({up})"`')
    found = Plane(kubeconfig, Path(state), ROOT / ".tools" / "bin")
    if found.kubectl("get", "--raw", "/readyz", check=False).returncode != 0:
        unavailable(required_by, f"the control plane in {state} does not answer")
    return found


@pytest.fixture(scope="session")
def plane() -> Plane:
    return open_plane(
        "KUBECONFIG", "CLUSTER_STATE_DIR", "CLUSTER_REQUIRED", "tools/cluster/cluster.sh up"
    )


def platform_policy(url: str) -> Obj:
    """The shipped TenancyPolicy with the seed's instance where the proxy runs."""
    policy: Obj = yaml.safe_load((INSTALL / "tenancy-policy.yaml").read_text())
    policy["spec"]["instances"][0]["url"] = url
    return policy


def install_platform(plane: Plane, proxy: Proxy) -> None:
    """The platform team's manifests, applied verbatim; the proxy rid of the seed's aliases.

    `proxy.url` is where the plane reaches the proxy: it becomes the seed instance's URL.
    """
    for namespace in ("litellm", "team-a", "team-b"):
        if plane.get("namespace", namespace) is None:
            plane.kubectl("create", "namespace", namespace)
    plane.kubectl("apply", "-f", str(ROOT / "package" / "policy"))
    plane.kubectl(
        "wait", "--for", "condition=Established", "crd/tenancypolicies.litellm.fn.crossplane.io"
    )
    for name in ("crossplane-rbac.yaml", "providerconfig.yaml"):
        plane.kubectl("apply", "-f", str(INSTALL / name))
    install_xrd(plane, INSTALL / "definition.yaml", INSTALL / "composition.yaml")
    for kind in ("user", "team"):
        install_xrd(
            plane, ACCOUNTS / f"{kind}-definition.yaml", ACCOUNTS / f"{kind}-composition.yaml"
        )
    plane.apply(platform_policy(proxy.url))
    instance: Obj = yaml.safe_load((INSTALL / "instance-secret.yaml").read_text())
    instance["stringData"]["masterkey"] = proxy.master_key
    plane.apply(instance)
    with proxy.admin() as admin:  # a run that died half-way may have left them
        admin.post("/key/delete", json={"key_aliases": list(SEED_ALIASES)})


@pytest.fixture(scope="session")
def platform(plane: Plane, proxy: Proxy) -> Iterator[Plane]:
    install_platform(plane, proxy)
    yield plane


@dataclass
class Tenant:
    """VirtualKeys made from the examples, with unique names and aliases, cleaned up after."""

    plane: Plane
    unique: str
    made: list[tuple[str, str]]

    def virtualkey(self, example: str = "virtualkey.yaml", **spec: Any) -> Obj:
        xr: Obj = yaml.safe_load((VIRTUALKEYS / example).read_text())
        suffix = f"{self.unique}-{len(self.made)}"
        xr["metadata"]["name"] = f"{xr['metadata']['name']}-{suffix}"
        xr["spec"]["keyAlias"] = f"{xr['spec']['keyAlias']}-{suffix}"
        xr["spec"].update(spec)
        self.plane.apply(xr)
        self.made.append((xr["metadata"]["namespace"], xr["metadata"]["name"]))
        return xr

    def ready(self, xr: Obj, seconds: float = TIMEOUT) -> Obj:
        meta = xr["metadata"]

        def is_ready() -> Obj | None:
            found = self.plane.get("virtualkey", meta["name"], meta["namespace"])
            return found if condition(found, "Ready").get("status") == "True" else None

        try:
            ready: Obj = until(is_ready, f"VirtualKey {meta['name']} to be Ready", seconds)
        except pytest.fail.Exception:
            # Say what stands in the way: the VirtualKey's and its Requests' conditions.
            found = self.plane.get("virtualkey", meta["name"], meta["namespace"]) or {}
            requests = self.plane.items(
                "requests.http.m.crossplane.io",
                meta["namespace"],
                f"crossplane.io/composite={meta['name']}",
            )
            seen = [((found.get("status") or {}).get("conditions"))] + [
                (r["metadata"].get("annotations"), (r.get("status") or {}).get("conditions"))
                for r in requests
            ]
            pytest.fail(f"VirtualKey {meta['name']} is not Ready: {seen!r:.3000}")
        return ready

    def reason(self, xr: Obj, kind: str = "KeyReady") -> str:
        """The reason of one condition of the VirtualKey, as it is now."""
        meta = xr["metadata"]
        found = self.plane.get("virtualkey", meta["name"], meta["namespace"])
        return str(condition(found, kind).get("reason") or "")

    def key(self, xr: Obj) -> str:
        meta = xr["metadata"]
        found = self.plane.get("virtualkey", meta["name"], meta["namespace"])
        assert found is not None
        name = found["status"]["keySecretRef"]
        return self.plane.secret_value(meta["namespace"], name, "key")


@pytest.fixture
def tenant(platform: Plane, unique: str) -> Iterator[Tenant]:
    made = Tenant(platform, unique, [])
    yield made
    for namespace, name in made.made:
        platform.kubectl("delete", "virtualkey", "-n", namespace, name, "--wait=false", check=False)


@pytest.fixture
def unique() -> str:
    return os.urandom(4).hex()


SERVICE_ACCOUNT = "function-litellm-keys-poller"


@pytest.fixture(scope="session")
def poller_kubeconfig(platform: Plane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig with the poller ServiceAccount's token, after rbac.yaml, verbatim."""
    platform.kubectl("apply", "-f", str(POLLER / "rbac.yaml"))
    token = platform.kubectl(
        "create", "token", SERVICE_ACCOUNT, "-n", "crossplane-system", "--duration", "2h"
    ).stdout.strip()
    admin = yaml.safe_load(Path(platform.kubeconfig).read_text())
    admin["users"] = [{"name": "poller", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "poller"
    path = tmp_path_factory.mktemp("poller") / "kubeconfig"
    path.write_text(yaml.safe_dump(admin))
    return path


def poll_once(kubeconfig: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command.
        [
            sys.executable, "-m", "function.main", "poll", "--once",
            "--kubeconfig", str(kubeconfig), "--metrics-address", "", *flags,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"},
        check=False,
    )  # fmt: skip
