"""The real LiteLLM samples in ../shared/litellm/samples."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.fake_litellm import SAMPLES


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data
