"""Shared fixtures: the function's gRPC server and the seed VirtualKeys."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grpc_harness import FunctionServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# ../shared beside the checkout: the LiteLLM harness, samples and CRD schemas.
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def function_server() -> Iterator[FunctionServer]:
    with FunctionServer() as server:
        yield server


def load_example(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def seed_xr() -> dict[str, Any]:
    """The seed's example-service VirtualKey, as a v2 XR."""
    xr = copy.deepcopy(load_example("virtualkey.yaml"))
    xr["metadata"]["uid"] = "5e1f1c57-0000-4000-8000-000000000001"
    return xr
