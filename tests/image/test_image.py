"""The function's image, built from the Dockerfile, as a platform team runs it.

tools/image/build.sh builds the image with podman on stand-ins for the
public bases (tools/image/bases.sh): the runtime one has distroless'
Python, its nonroot user 65532 and no shell. Each test runs the image as
Crossplane's Deployment and the DeploymentRuntimeConfig in examples/poller/
do: as 65532, on a read-only root, with every capability dropped.

Without podman these tests are skipped, unless IMAGE_REQUIRED=1, as .ci/run
sets. The fixture rebuilds the image (layers cached: seconds when nothing
changed), so what is tested is the code in this checkout.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import json_format

from tests.conftest import ACCOUNTS, ROOT, VIRTUALKEYS, free_port, unavailable
from tests.grpc_harness import FunctionServer, make_request

IMAGE = "localhost/litellm/function-litellm-keys:dev"
# As the function's pod runs: runc (crun refuses this machine's hybrid
# cgroups), the limits this machine allows, and the shipped securityContext.
RUN = [
    "podman", "--runtime", "runc", "run", "--rm",
    "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
    "--network", "host", "--read-only", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "--user", "65532:65532",
]  # fmt: skip


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("podman") is None:
        unavailable("IMAGE_REQUIRED", "no podman: install it, then run tools/image/build.sh")
    out = tmp_path_factory.mktemp("image") / "image.tar"
    built = subprocess.run(  # noqa: S603 - our own build script.
        ["bash", str(ROOT / "tools" / "image" / "build.sh"), str(out)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return IMAGE


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - podman with our own arguments.
        ["podman", *args],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def served(image: str) -> Iterator[str]:
    """`serve` in the image, as its pod runs it, on a free loopback port."""
    port = free_port()
    name = f"fnlk-image-test-{port}"
    proc = subprocess.Popen(  # noqa: S603 - podman with our own arguments.
        [*RUN, "--name", name, image, "serve", "--insecure", "--address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    if proc.poll() is not None:
        pytest.fail(f"serve exited {proc.returncode} in the image: {proc.communicate()[1][-2000:]}")
    yield f"127.0.0.1:{port}"
    _podman("stop", "--time", "10", name)
    proc.wait(timeout=30)


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def test_the_image_is_configured_as_the_dockerfile_says(image: str) -> None:
    inspected = json.loads(_podman("image", "inspect", image).stdout)[0]["Config"]
    # kubelet refuses runAsNonRoot for a named user it cannot verify.
    assert inspected["User"] == "65532:65532"
    assert inspected["Entrypoint"] == ["/venv/fn/bin/function-litellm-keys"]
    assert inspected["Cmd"] == ["serve"]
    assert sorted(inspected["ExposedPorts"]) == ["8080/tcp", "9443/tcp"]


def test_the_image_runs_as_nonroot_with_no_shell(image: str) -> None:
    version = subprocess.run(  # noqa: S603
        [*RUN, image, "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert version.returncode == 0, version.stderr
    # As on distroless: a probe or hook that needs a shell fails here too.
    shell = subprocess.run(  # noqa: S603
        [*RUN, "--entrypoint", "/bin/sh", image, "-c", "true"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shell.returncode != 0


@pytest.mark.parametrize(
    ("reason", "xr"),
    [
        ("the seed VirtualKey", VIRTUALKEYS / "virtualkey.yaml"),
        ("a VirtualKey with every option", VIRTUALKEYS / "virtualkey-advanced.yaml"),
        ("a User", ACCOUNTS / "user.yaml"),
        ("a Team", ACCOUNTS / "team.yaml"),
    ],
)
def test_the_function_in_the_image_answers_as_the_checkout_does(
    served: str, reason: str, xr: Path
) -> None:
    # The first run makes a random key; the second, given what the first
    # composed as observed, must compose the same thing in both places.
    with FunctionServer() as local:
        first = local.run(make_request(_load(xr)))
        observed = {
            name: json_format.MessageToDict(r.resource)
            for name, r in first.desired.resources.items()
        }
        req = make_request(_load(xr), observed)
        want = local.run(req)
    with grpc.insecure_channel(served) as channel:
        got = grpcv1.FunctionRunnerServiceStub(channel).RunFunction(req, timeout=30)
    assert json_format.MessageToDict(got) == json_format.MessageToDict(want), reason
    assert got.desired.resources, reason
