"""Version of function-litellm-keys."""

__version__ = "0.1.0"
