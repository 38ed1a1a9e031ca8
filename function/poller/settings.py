"""Every setting of the poller, from a flag or an environment variable.

`Settings` is the one table: each field is one setting, written once with
its type, its default, its environment variables, its help and its check
(`setting(...)`). From it:

- `add_arguments(parser)`: the flags, `--` and the field's name with dashes.
  Each flag's default comes from the first of its environment variables
  that is set, then from the table; its help names both.
- `Settings.from_args(args)`: the checked settings, or InvalidInputError
  naming the flag.

A field without a flag (`write_retries`) is a plain default.

Which proxy a VirtualKey reaches is not a setting: the poller reads the
cluster's TenancyPolicies each cycle, as the function does, so the two
never disagree about where a master key may be sent.
"""

from __future__ import annotations

import argparse
import enum
import os
import re
import socket
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, TypeVar

from function.poller.fetch import MAX_PAGES, FetchMode
from function.poller.litellm import MAX_RESPONSE_BYTES
from function.poller.masks import MIN_AGE
from function.provider_http.mask import DEFAULT_NAMESPACE as DEFAULT_MASK_NAMESPACE
from function.validation import DNS_LABEL_PATTERN, InvalidInputError

T = TypeVar("T")

DEFAULT_LEASE_NAME = "function-litellm-keys-poller"
DEFAULT_METRICS_ADDRESS = ":8089"
# A cycle's deadline, unless --cycle-deadline says otherwise: the interval, so
# that cycles never pile up, but never under this many seconds.
MIN_DEFAULT_CYCLE_DEADLINE = 10.0
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def default_cycle_deadline(interval: float) -> float:
    """The cycle deadline when none is set: the interval, at least 10 s."""
    return max(interval, MIN_DEFAULT_CYCLE_DEADLINE)


# --- the checks: what is wrong with a value, or None -------------------------------------


def _positive(value: float | None) -> str | None:
    return "must be greater than 0" if value is not None and value <= 0 else None


def _fraction(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be a fraction in [0, 1)"


def _at_least_one(value: int) -> str | None:
    return "must be at least 1" if value < 1 else None


def _not_negative(value: float) -> str | None:
    return "must be 0 or more" if value < 0 else None


def _namespace_or_empty(value: str) -> str | None:
    if value and not re.fullmatch(DNS_LABEL_PATTERN, value):
        return "must be a namespace name (a DNS label), or empty"
    return None


@dataclass(frozen=True)
class Option:
    """How one setting is given: its variables, its help, and its check."""

    env: tuple[str, ...]
    help: str
    # The default as the help says it, where the value alone would not say it well.
    shown: str | None = None
    check: Callable[[Any], str | None] | None = None
    choices: tuple[str, ...] | None = None
    switch: bool = False  # a flag without a value (`--once`)


def setting(  # noqa: PLR0913 - the columns of the table.
    default: T,
    env: str | tuple[str, ...],
    help: str,  # noqa: A002 - the column argparse calls help.
    *,
    shown: str | None = None,
    check: Callable[[Any], str | None] | None = None,
    choices: tuple[str, ...] | None = None,
    switch: bool = False,
) -> T:
    """A field with a flag: its default, its environment variables, its help and its check."""
    variables = (env,) if isinstance(env, str) else env
    flag = Option(variables, help, shown=shown, check=check, choices=choices, switch=switch)
    return field(default=default, metadata={"option": flag})


@dataclass(frozen=True)
class Settings:
    """The poller's settings: one row each."""

    interval: float = setting(60.0, "POLLER_INTERVAL", "seconds between cycles", check=_positive)
    jitter: float = setting(
        0.1,
        "POLLER_JITTER",
        "random spread of the interval, as a fraction",
        check=_fraction,
    )
    once: bool = setting(
        False,  # noqa: FBT003 - a default, not a flag argument.
        "POLLER_ONCE",
        "run one cycle and exit, without leader election",
        switch=True,
    )
    litellm_timeout: float = setting(
        10.0,
        "POLLER_LITELLM_TIMEOUT",
        "seconds for one whole LiteLLM request",
        check=_positive,
    )
    litellm_deadline: float = setting(
        120.0,
        "POLLER_LITELLM_DEADLINE",
        "seconds for all of one instance's requests in a cycle; a slower proxy is skipped "
        "with backoff",
        check=_positive,
    )
    # Seconds a whole cycle may take (None: `default_cycle_deadline(interval)`).
    cycle_deadline: float | None = setting(
        None,
        "POLLER_CYCLE_DEADLINE",
        "seconds a whole cycle may take, whatever the proxies do; what it did not reach keeps "
        "its last values",
        shown=f"the interval, at least {MIN_DEFAULT_CYCLE_DEADLINE:g}",
        check=_positive,
    )
    litellm_max_pages: int = setting(
        MAX_PAGES,
        "POLLER_LITELLM_MAX_PAGES",
        "pages of 100 keys read from one proxy per cycle at most",
        check=_at_least_one,
    )
    litellm_max_bytes: int = setting(
        MAX_RESPONSE_BYTES,
        "POLLER_LITELLM_MAX_BYTES",
        "largest answer read from a proxy, in bytes",
        shown=f"{MAX_RESPONSE_BYTES // 2**20} MiB",
        check=_at_least_one,
    )
    fetch_mode: FetchMode = setting(  # noqa: RUF009 - a Field, as field() returns.
        FetchMode.BULK,
        "POLLER_FETCH_MODE",
        "bulk (/key/list, paged) or per-key (/key/list?key_alias= for each key)",
        choices=tuple(m.value for m in FetchMode),
    )
    concurrency: int = setting(
        4, "POLLER_CONCURRENCY", "LiteLLM instances polled in parallel", check=_at_least_one
    )
    backoff_base: float = setting(
        5.0,
        "POLLER_BACKOFF_BASE",
        "first backoff after an error, in seconds",
        check=_positive,
    )
    # At least backoff_base (`from_args`).
    backoff_max: float = setting(300.0, "POLLER_BACKOFF_MAX", "longest backoff, in seconds")
    write_retries: int = 5
    metrics_address: str = setting(
        DEFAULT_METRICS_ADDRESS,
        "POLLER_METRICS_ADDRESS",
        "host:port for /metrics, /healthz and /readyz; empty disables",
    )
    leader_elect: bool = setting(
        True,  # noqa: FBT003 - a default, not a flag argument.
        "POLLER_LEADER_ELECT",
        "elect one active replica through a Lease",
    )
    lease_name: str = setting(DEFAULT_LEASE_NAME, "POLLER_LEASE_NAME", "the Lease's name")
    lease_namespace: str = setting(
        "crossplane-system", ("POLLER_LEASE_NAMESPACE", "POD_NAMESPACE"), "the Lease's namespace"
    )
    lease_duration: float = setting(
        15.0,
        "POLLER_LEASE_DURATION",
        "seconds a Lease lasts without renewal",
        check=_positive,
    )
    identity: str = field(
        default_factory=socket.gethostname,
        metadata={
            "option": Option(
                ("POLLER_IDENTITY", "POD_NAME"),
                "this replica's name in the Lease",
                shown="the host name",
            )
        },
    )
    kubeconfig: str | None = setting(
        None,
        "KUBECONFIG",
        "kubeconfig file outside a cluster",
        shown="in-cluster config inside a pod, else ~/.kube/config",
    )
    kube_context: str | None = setting(
        None, "POLLER_KUBE_CONTEXT", "kubeconfig context", shown="the current one"
    )
    kube_timeout: float = setting(
        10.0, "POLLER_KUBE_TIMEOUT", "seconds per API-server request", check=_positive
    )
    # Where provider-http keeps the Secrets that mask /key/generate's echo
    # (function.provider_http.mask); empty: the poller does not collect them.
    mask_namespace: str = setting(
        DEFAULT_MASK_NAMESPACE,
        "POLLER_MASK_NAMESPACE",
        "namespace of the Secrets masking /key/generate's echo (function.provider_http.mask), "
        "whose Request is gone and which the poller deletes; empty: never",
        check=_namespace_or_empty,
    )
    mask_gc_interval: float = setting(
        600.0,
        "POLLER_MASK_GC_INTERVAL",
        "seconds between two collections of mask Secrets",
        check=_positive,
    )
    mask_min_age: float = setting(
        MIN_AGE.total_seconds(),
        "POLLER_MASK_MIN_AGE",
        "seconds an orphaned mask Secret must have existed before it is deleted, so that a "
        "Request being made is never raced",
        check=_not_negative,
    )
    log_level: str = setting(
        "INFO",
        "POLLER_LOG_LEVEL",
        "log level",
        choices=LOG_LEVELS + tuple(level.lower() for level in LOG_LEVELS),
    )

    @property
    def cycle_seconds(self) -> float:
        """Seconds a whole cycle may take."""
        if self.cycle_deadline is not None:
            return self.cycle_deadline
        return default_cycle_deadline(self.interval)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """Settings from parsed flags; raises InvalidInputError on a bad value."""
        values: dict[str, Any] = {}
        for row in _rows():
            value = getattr(args, row.name)
            problem = row.option.check(value) if row.option.check else None
            if problem:
                msg = f"{row.flag} {problem}"
                raise InvalidInputError(msg)
            values[row.name] = row.convert(value)
        values["backoff_max"] = max(values["backoff_max"], values["backoff_base"])
        values["log_level"] = values["log_level"].upper()
        return cls(**values)


@dataclass(frozen=True)
class _Row:
    """One setting with a flag, as argparse and `from_args` use it."""

    name: str
    kind: type  # the field's type, without None
    optional: bool  # None is a value
    option: Option
    spec: Field[Any]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def default(self) -> Any:
        """The value of the first variable that is set, else the table's default."""
        for name in self.option.env:
            value = os.environ.get(name)
            if value is not None:
                return self._from_env(value)
        if self.spec.default_factory is not MISSING:
            return self.spec.default_factory()
        return self.spec.default

    def _from_env(self, value: str) -> Any:
        if self.optional and not value:
            return None
        if self.kind is bool:  # a variable is true only when it says so
            return value.strip().lower() in _TRUE
        if self.kind in (int, float):
            return self.kind(value)
        return value  # text; an enum is converted with the flag's value (`convert`)

    def convert(self, value: Any) -> Any:
        """The parsed flag as `Settings` holds it."""
        if self.optional and value in (None, ""):
            return None
        if issubclass(self.kind, enum.Enum):
            return self.kind(value)
        return value

    def shown(self) -> str:
        """The default as the help says it."""
        if self.option.shown is not None:
            return self.option.shown
        default = self.spec.default
        if isinstance(default, bool):
            return "true" if default else "false"
        if isinstance(default, float):
            return f"{default:g}"
        return str(default)

    def arguments(self) -> dict[str, Any]:
        """`parser.add_argument`'s keywords for this flag."""
        variables = ", else ".join(self.option.env)
        found: dict[str, Any] = {
            "default": self.default(),
            "help": f"{self.option.help} ({variables}; default {self.shown()})",
        }
        if self.option.switch:
            found["action"] = "store_true"
        elif self.option.choices is not None:
            found["choices"] = list(self.option.choices)
        elif self.kind is bool:
            found["type"] = _bool
        elif self.kind in (int, float):
            found["type"] = self.kind
        return found


def _rows() -> list[_Row]:
    """The settings that have a flag, in the table's order."""
    hints = typing.get_type_hints(Settings)
    found = []
    for spec in fields(Settings):
        if "option" not in spec.metadata:
            continue
        kind, optional = hints[spec.name], False
        if isinstance(kind, types.UnionType):
            members = [k for k in typing.get_args(kind) if k is not type(None)]
            kind, optional = members[0], True
        found.append(_Row(spec.name, kind, optional, spec.metadata["option"], spec))
    return found


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    msg = f"expected true or false, got {value!r}"
    raise argparse.ArgumentTypeError(msg)


def flag_table() -> list[tuple[str, tuple[str, ...], str]]:
    """Each flag, its environment variables and its default as the help says it."""
    return [(row.flag, row.option.env, row.shown()) for row in _rows()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the poller's flags to `parser`."""
    for row in _rows():
        parser.add_argument(row.flag, **row.arguments())
