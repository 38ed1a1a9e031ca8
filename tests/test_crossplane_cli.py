"""The real Crossplane CLI against the function and the manifests.

- `crossplane render` calls the function's gRPC server (`serve --insecure`)
  the way Crossplane does, with examples/install/composition.yaml
  and functions.yaml (its Development runtime pointed at our port).
- `crossplane beta validate` checks the rendered resources and the example
  VirtualKeys against the XRD (OpenAPI and CEL, through the API server's own
  validation library), provider-http's Request CRD and Crossplane's CRDs,
  all from ../shared/schemas, offline.

The CLI is built by tools/crossplane/build.sh into .tools/bin/crossplane
(or named by $CROSSPLANE_CLI). Without it these tests are skipped, unless
CROSSPLANE_CLI_REQUIRED=1, as .ci/run sets.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ACCOUNTS, EXAMPLES, INSTALL, ROOT, SHARED, VIRTUALKEYS, free_port

CLI = Path(os.environ.get("CROSSPLANE_CLI", ROOT / ".tools" / "bin" / "crossplane"))
# The image name only keys the offline cache that holds Crossplane's CRDs.
CROSSPLANE_IMAGE = "xpkg.crossplane.io/crossplane/crossplane:v2.3.4"


@pytest.fixture(scope="module")
def cli() -> Path:
    if not CLI.is_file():
        if os.environ.get("CROSSPLANE_CLI_REQUIRED") == "1":
            pytest.fail(f"CROSSPLANE_CLI_REQUIRED=1 but {CLI} does not exist")
        pytest.skip("no Crossplane CLI: run tools/crossplane/build.sh (needs Go)")
    return CLI


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The function's real server, and a functions.yaml that points render at it."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own entry point.
        [
            sys.executable,
            "-m",
            "function.main",
            "serve",
            "--insecure",
            "--address",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    functions = yaml.safe_load((INSTALL / "functions.yaml").read_text())
    annotations = functions["metadata"]["annotations"]
    annotations["render.crossplane.io/runtime-development-target"] = f"127.0.0.1:{port}"
    path = tmp_path_factory.mktemp("render") / "functions.yaml"
    path.write_text(yaml.safe_dump(functions))
    yield path
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def extensions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The schemas to validate against, and a cache that holds Crossplane's own CRDs."""
    ext = tmp_path_factory.mktemp("extensions")
    for xrd in (
        INSTALL / "definition.yaml",
        ACCOUNTS / "user-definition.yaml",
        ACCOUNTS / "team-definition.yaml",
    ):
        shutil.copy(xrd, ext / xrd.name)
    shutil.copy(
        SHARED / "schemas" / "provider-http" / "http.m.crossplane.io_requests.yaml",
        ext / "requests.yaml",
    )
    shutil.copy(
        SHARED / "schemas" / "provider-http" / "http.m.crossplane.io_clusterproviderconfigs.yaml",
        ext / "clusterproviderconfigs.yaml",
    )
    shutil.copy(
        ROOT / "package" / "input" / "litellm.fn.crossplane.io_inputs.yaml", ext / "in.yaml"
    )
    shutil.copy(
        ROOT / "package" / "policy" / "litellm.fn.crossplane.io_tenancypolicies.yaml",
        ext / "policy.yaml",
    )
    cache = tmp_path_factory.mktemp("cache")
    image_dir = cache / CROSSPLANE_IMAGE.replace(":", "@")
    image_dir.mkdir(parents=True)
    crds = sorted((SHARED / "schemas" / "crossplane").glob("*.yaml"))
    (image_dir / "package.yaml").write_text("---\n".join(p.read_text() for p in crds))
    return ext, cache


def _validate(
    cli: Path, extensions: tuple[Path, Path], resources: Path
) -> subprocess.CompletedProcess[str]:
    ext, cache = extensions
    return subprocess.run(  # noqa: S603 - the CLI we built, with our own files.
        [
            str(cli),
            "beta",
            "validate",
            str(ext),
            str(resources),
            "--cache-dir",
            str(cache),
            "--crossplane-image",
            CROSSPLANE_IMAGE,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def required(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What Crossplane would fetch for the function: the shipped policy and the Namespaces."""
    path = tmp_path_factory.mktemp("required") / "required.yaml"
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
        for n in ("team-a", "team-b")
    ]
    text = (INSTALL / "tenancy-policy.yaml").read_text()
    path.write_text(text + "".join("---\n" + yaml.safe_dump(n) for n in namespaces))
    return path


def _render(cli: Path, functions: Path, xr: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [str(cli), "render", str(xr), str(INSTALL / "composition.yaml"), str(functions), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "example", ["virtualkey.yaml", "virtualkey-advanced.yaml", "virtualkey-explicit.yaml"]
)
def test_render_composes_a_secret_and_a_request(  # noqa: PLR0917 - pytest fixtures.
    cli: Path,
    served: Path,
    extensions: tuple[Path, Path],
    required: Path,
    tmp_path: Path,
    example: str,
) -> None:
    rendered = _render(
        cli, served, VIRTUALKEYS / example, "--include-full-xr", f"--required-resources={required}"
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Request", "Secret", "VirtualKey"], kinds
    xr = next(d for d in docs if d["kind"] == "VirtualKey")
    assert xr["status"]["keySecretRef"].endswith("-litellm-key")
    types = {c["type"]: c for c in xr["status"]["conditions"]}
    assert types["KeyReady"]["reason"] == "Creating"
    assert types["Ready"]["status"] == "False"  # nothing exists on the proxy yet
    out = tmp_path / "rendered.yaml"
    out.write_text(rendered.stdout)
    validated = _validate(cli, extensions, out)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "0 failure cases" in validated.stdout, validated.stdout


def test_render_reports_invalid_input_as_fatal(
    cli: Path, served: Path, required: Path, tmp_path: Path
) -> None:
    xr = yaml.safe_load((VIRTUALKEYS / "virtualkey.yaml").read_text())
    xr["spec"]["budgetDuration"] = "hourly"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(xr))
    rendered = _render(cli, served, path, f"--required-resources={required}")
    assert rendered.returncode != 0
    assert "spec.budgetDuration" in rendered.stderr, rendered.stderr


def test_render_without_a_policy_grants_nothing(cli: Path, served: Path) -> None:
    rendered = _render(cli, served, VIRTUALKEYS / "virtualkey.yaml")
    assert rendered.returncode != 0
    assert "spec.connectionRef.instanceRef" in rendered.stderr, rendered.stderr
    assert "there is no TenancyPolicy in the cluster" in rendered.stderr, rendered.stderr


def test_examples_validate(cli: Path, extensions: tuple[Path, Path], tmp_path: Path) -> None:
    files = [
        "virtualkey/virtualkey.yaml",
        "virtualkey/virtualkey-advanced.yaml",
        "virtualkey/virtualkey-explicit.yaml",
        "accounts/virtualkey-team.yaml",
        "accounts/user.yaml",
        "accounts/team.yaml",
        "install/composition.yaml",
        "accounts/user-composition.yaml",
        "accounts/team-composition.yaml",
        "install/providerconfig.yaml",
        "install/tenancy-policy.yaml",
    ]
    out = tmp_path / "examples.yaml"
    out.write_text("---\n".join((EXAMPLES / f).read_text() for f in files))
    validated = _validate(cli, extensions, out)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "0 failure cases" in validated.stdout, validated.stdout


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"maxBudget": "ten"}, "spec.maxBudget"),
        ({"budgetDuration": "0h"}, "spec.budgetDuration"),
        ({"keyAlias": "-bad-"}, "spec.keyAlias"),
        ({"softBudget": "20"}, "softBudget must not be larger than maxBudget"),
        ({"metadata": {"a": "{{ s:ns:k }}"}}, "secret placeholder"),
        (
            {"connectionRef": {"instanceRef": {"name": "a", "namespace": "b"}, "url": "http://x"}},
            "set either instanceRef",
        ),
        ({"tpmLimit": -1}, "spec.tpmLimit"),
        ({"duration": "999999w"}, "spec.duration"),
        ({"metadata": {"logging": "x"}}, "LiteLLM keeps these keys for itself"),
    ],
)
def test_api_server_rules_reject_bad_virtualkeys(
    cli: Path,
    extensions: tuple[Path, Path],
    tmp_path: Path,
    change: dict[str, object],
    complaint: str,
) -> None:
    xr = yaml.safe_load((VIRTUALKEYS / "virtualkey.yaml").read_text())
    xr["spec"].update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(xr))
    validated = _validate(cli, extensions, path)
    assert validated.returncode != 0, validated.stdout
    assert complaint in validated.stdout, validated.stdout


def test_packages_build(cli: Path, tmp_path: Path) -> None:
    """`crossplane xpkg build` parses and lints both packages."""
    built = subprocess.run(  # noqa: S603
        ["bash", str(ROOT / "tools" / "crossplane" / "build-packages.sh"), str(tmp_path)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CROSSPLANE_CLI": str(cli)},
    )
    assert built.returncode == 0, built.stderr
    for name in ("configuration.xpkg", "function.xpkg"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.parametrize(
    ("example", "composition", "kind"),
    [
        ("user.yaml", "user-composition.yaml", "User"),
        ("team.yaml", "team-composition.yaml", "Team"),
    ],
)
def test_render_users_and_teams(  # noqa: PLR0917 - pytest fixtures and a table.
    cli: Path,
    served: Path,
    extensions: tuple[Path, Path],
    required: Path,
    tmp_path: Path,
    example: str,
    composition: str,
    kind: str,
) -> None:
    """The real CLI renders a User and a Team: one Request each before anything exists."""
    rendered = subprocess.run(  # noqa: S603
        [
            str(cli), "render", str(ACCOUNTS / example), str(ACCOUNTS / composition),
            str(served), "--include-full-xr", f"--required-resources={required}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert sorted(d["kind"] for d in docs) == sorted(["Request", kind])
    request = next(d for d in docs if d["kind"] == "Request")
    body = json.loads(request["spec"]["forProvider"]["payload"]["body"])
    if kind == "User":
        assert body["create"]["auto_create_key"] is False
        assert body["userId"] == "team-a.alice"
    else:
        assert body["teamId"] == "team-a.research"
    xr = next(d for d in docs if d["kind"] == kind)
    types = {c["type"]: c for c in xr["status"]["conditions"]}
    assert types[f"{kind}Ready"]["reason"] == "Creating"
    out = tmp_path / "rendered.yaml"
    out.write_text(rendered.stdout)
    validated = _validate(cli, extensions, out)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "0 failure cases" in validated.stdout, validated.stdout
