"""function-litellm-keys: LiteLLM virtual keys managed the Crossplane way."""

from function.__version__ import __version__

__all__ = ["__version__"]
