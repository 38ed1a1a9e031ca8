"""Keep raw keys out of everything a person or a machine can read.

- `redact(text)`: the project's one redaction (function/redact.py): keys
  become `sk-REDACTED`, bearer values `Bearer REDACTED`; for messages built
  from foreign text such as a proxy's error body or an exception's string.
- `RedactingFilter`: a logging filter doing the same to every record, as a
  second line of defence under the rule that no code logs a key at all.
"""

from __future__ import annotations

import logging

from function.redact import redact

__all__ = ["RedactingFilter", "redact"]


class RedactingFilter(logging.Filter):
    """A logging filter that redacts keys from the final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, redacted, and drop the arguments."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message, limit=4000)
        record.args = None
        return True
