"""Every setting of the poller, from a flag or an environment variable.

- `add_arguments(parser)`: the flags; each one's default comes from the
  environment variable named in its help, then from the built-in default.
- `Settings.from_args(args)`: validated settings.

Which proxy a VirtualKey reaches is not a setting: the poller reads the
cluster's TenancyPolicies each cycle, as the function does, so the two
never disagree about where a master key may be sent.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from dataclasses import dataclass

from function.poller.fetch import FetchMode
from function.provider_http.mask import DEFAULT_NAMESPACE as DEFAULT_MASK_NAMESPACE
from function.validation import DNS_LABEL_PATTERN, InvalidInputError

DEFAULT_LEASE_NAME = "function-litellm-keys-poller"
DEFAULT_METRICS_ADDRESS = ":8089"
# A cycle's deadline, unless --cycle-deadline says otherwise: the interval, so
# that cycles never pile up, but never under this many seconds.
MIN_DEFAULT_CYCLE_DEADLINE = 10.0
# How often the mask Secrets are collected, unless --mask-gc-interval says otherwise.
DEFAULT_MASK_GC_INTERVAL = 600.0
# How old an orphaned mask Secret must be before it is deleted (--mask-min-age).
DEFAULT_MASK_MIN_AGE = 600.0


def default_cycle_deadline(interval: float) -> float:
    """The cycle deadline when none is set: the interval, at least 10 s."""
    return max(interval, MIN_DEFAULT_CYCLE_DEADLINE)


@dataclass(frozen=True)
class Settings:
    """The poller's settings."""

    interval: float = 60.0
    jitter: float = 0.1
    once: bool = False
    litellm_timeout: float = 10.0
    litellm_deadline: float = 120.0
    # Seconds a whole cycle may take (None: `default_cycle_deadline(interval)`).
    cycle_deadline: float | None = None
    litellm_max_pages: int = 1000
    litellm_max_bytes: int = 8 * 1024 * 1024
    fetch_mode: FetchMode = FetchMode.BULK
    concurrency: int = 4
    backoff_base: float = 5.0
    backoff_max: float = 300.0
    write_retries: int = 5
    metrics_address: str = DEFAULT_METRICS_ADDRESS
    leader_elect: bool = True
    lease_name: str = DEFAULT_LEASE_NAME
    lease_namespace: str = "crossplane-system"
    lease_duration: float = 15.0
    identity: str = "poller"
    kubeconfig: str | None = None
    kube_context: str | None = None
    kube_timeout: float = 10.0
    log_level: str = "INFO"
    # Where provider-http keeps the Secrets that mask /key/generate's echo
    # (function.mask); empty: the poller does not collect them.
    mask_namespace: str = DEFAULT_MASK_NAMESPACE
    mask_gc_interval: float = DEFAULT_MASK_GC_INTERVAL
    mask_min_age: float = DEFAULT_MASK_MIN_AGE

    @property
    def cycle_seconds(self) -> float:
        """Seconds a whole cycle may take."""
        if self.cycle_deadline is not None:
            return self.cycle_deadline
        return default_cycle_deadline(self.interval)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """Settings from parsed flags; raises InvalidInputError on a bad value."""
        for name in (
            "interval",
            "litellm_timeout",
            "litellm_deadline",
            "kube_timeout",
            "lease_duration",
            "backoff_base",
            "mask_gc_interval",
        ):
            if getattr(args, name) <= 0:
                msg = f"--{name.replace('_', '-')} must be greater than 0"
                raise InvalidInputError(msg)
        if not 0 <= args.jitter < 1:
            msg = "--jitter must be a fraction in [0, 1)"
            raise InvalidInputError(msg)
        for name in ("concurrency", "litellm_max_pages", "litellm_max_bytes"):
            if getattr(args, name) < 1:
                msg = f"--{name.replace('_', '-')} must be at least 1"
                raise InvalidInputError(msg)
        if args.mask_namespace and not re.fullmatch(DNS_LABEL_PATTERN, args.mask_namespace):
            msg = "--mask-namespace must be a namespace name (a DNS label), or empty"
            raise InvalidInputError(msg)
        if args.mask_min_age < 0:
            msg = "--mask-min-age must be 0 or more"
            raise InvalidInputError(msg)
        if args.cycle_deadline is not None and args.cycle_deadline <= 0:
            msg = "--cycle-deadline must be greater than 0"
            raise InvalidInputError(msg)
        return cls(
            interval=args.interval,
            jitter=args.jitter,
            once=args.once,
            litellm_timeout=args.litellm_timeout,
            litellm_deadline=args.litellm_deadline,
            cycle_deadline=args.cycle_deadline,
            litellm_max_pages=args.litellm_max_pages,
            litellm_max_bytes=args.litellm_max_bytes,
            fetch_mode=FetchMode(args.fetch_mode),
            concurrency=args.concurrency,
            backoff_base=args.backoff_base,
            backoff_max=max(args.backoff_max, args.backoff_base),
            metrics_address=args.metrics_address,
            leader_elect=args.leader_elect,
            lease_name=args.lease_name,
            lease_namespace=args.lease_namespace,
            lease_duration=args.lease_duration,
            identity=args.identity,
            kubeconfig=args.kubeconfig or None,
            kube_context=args.kube_context or None,
            kube_timeout=args.kube_timeout,
            log_level=args.log_level.upper(),
            mask_namespace=args.mask_namespace,
            mask_gc_interval=args.mask_gc_interval,
            mask_min_age=args.mask_min_age,
        )


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_seconds(name: str) -> float | None:
    value = os.environ.get(name)
    return float(value) if value else None


def _env_bool(name: str, *, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    msg = f"expected true or false, got {value!r}"
    raise argparse.ArgumentTypeError(msg)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the poller's flags to `parser`."""
    add = parser.add_argument
    add(
        "--interval",
        type=float,
        default=float(_env("POLLER_INTERVAL", "60")),
        help="seconds between cycles (POLLER_INTERVAL; default 60)",
    )
    add(
        "--jitter",
        type=float,
        default=float(_env("POLLER_JITTER", "0.1")),
        help="random spread of the interval, as a fraction (POLLER_JITTER; default 0.1)",
    )
    add(
        "--once",
        action="store_true",
        default=_env_bool("POLLER_ONCE", default=False),
        help="run one cycle and exit, without leader election (POLLER_ONCE=true)",
    )
    add(
        "--litellm-timeout",
        type=float,
        default=float(_env("POLLER_LITELLM_TIMEOUT", "10")),
        help="seconds for one whole LiteLLM request (POLLER_LITELLM_TIMEOUT; default 10)",
    )
    add(
        "--litellm-deadline",
        type=float,
        default=float(_env("POLLER_LITELLM_DEADLINE", "120")),
        help="seconds for all of one instance's requests in a cycle; a slower proxy is "
        "skipped with backoff (POLLER_LITELLM_DEADLINE; default 120)",
    )
    add(
        "--cycle-deadline",
        type=float,
        default=_env_seconds("POLLER_CYCLE_DEADLINE"),
        help="seconds a whole cycle may take, whatever the proxies do; what it did not reach "
        "keeps its last values (POLLER_CYCLE_DEADLINE; default the interval, at least "
        f"{MIN_DEFAULT_CYCLE_DEADLINE:g})",
    )
    add(
        "--litellm-max-pages",
        type=int,
        default=int(_env("POLLER_LITELLM_MAX_PAGES", "1000")),
        help="pages of 100 keys read from one proxy per cycle at most "
        "(POLLER_LITELLM_MAX_PAGES; default 1000)",
    )
    add(
        "--litellm-max-bytes",
        type=int,
        default=int(_env("POLLER_LITELLM_MAX_BYTES", str(8 * 1024 * 1024))),
        help="largest answer read from a proxy, in bytes (POLLER_LITELLM_MAX_BYTES; default 8 MiB)",
    )
    add(
        "--fetch-mode",
        choices=[m.value for m in FetchMode],
        default=_env("POLLER_FETCH_MODE", FetchMode.BULK.value),
        help="bulk (/key/list, paged) or per-key (/key/list?key_alias= for each key) "
        "(POLLER_FETCH_MODE; default bulk)",
    )
    add(
        "--concurrency",
        type=int,
        default=int(_env("POLLER_CONCURRENCY", "4")),
        help="LiteLLM instances polled in parallel (POLLER_CONCURRENCY; default 4)",
    )
    add(
        "--backoff-base",
        type=float,
        default=float(_env("POLLER_BACKOFF_BASE", "5")),
        help="first backoff after an error, in seconds (POLLER_BACKOFF_BASE; default 5)",
    )
    add(
        "--backoff-max",
        type=float,
        default=float(_env("POLLER_BACKOFF_MAX", "300")),
        help="longest backoff, in seconds (POLLER_BACKOFF_MAX; default 300)",
    )
    add(
        "--metrics-address",
        default=_env("POLLER_METRICS_ADDRESS", DEFAULT_METRICS_ADDRESS),
        help="host:port for /metrics, /healthz and /readyz; empty disables "
        f"(POLLER_METRICS_ADDRESS; default {DEFAULT_METRICS_ADDRESS})",
    )
    add(
        "--leader-elect",
        type=_bool,
        default=_env_bool("POLLER_LEADER_ELECT", default=True),
        help="elect one active replica through a Lease (POLLER_LEADER_ELECT; default true)",
    )
    add(
        "--lease-name",
        default=_env("POLLER_LEASE_NAME", DEFAULT_LEASE_NAME),
        help=f"the Lease's name (POLLER_LEASE_NAME; default {DEFAULT_LEASE_NAME})",
    )
    add(
        "--lease-namespace",
        default=_env("POLLER_LEASE_NAMESPACE", _env("POD_NAMESPACE", "crossplane-system")),
        help="the Lease's namespace (POLLER_LEASE_NAMESPACE, else POD_NAMESPACE; "
        "default crossplane-system)",
    )
    add(
        "--lease-duration",
        type=float,
        default=float(_env("POLLER_LEASE_DURATION", "15")),
        help="seconds a Lease lasts without renewal (POLLER_LEASE_DURATION; default 15)",
    )
    add(
        "--identity",
        default=_env("POLLER_IDENTITY", _env("POD_NAME", socket.gethostname())),
        help="this replica's name in the Lease (POLLER_IDENTITY, else POD_NAME; "
        "default the host name)",
    )
    add(
        "--kubeconfig",
        default=_env("KUBECONFIG", ""),
        help="kubeconfig file outside a cluster (KUBECONFIG; default: in-cluster config "
        "inside a pod, else ~/.kube/config)",
    )
    add(
        "--kube-context",
        default=_env("POLLER_KUBE_CONTEXT", ""),
        help="kubeconfig context (POLLER_KUBE_CONTEXT; default the current one)",
    )
    add(
        "--kube-timeout",
        type=float,
        default=float(_env("POLLER_KUBE_TIMEOUT", "10")),
        help="seconds per API-server request (POLLER_KUBE_TIMEOUT; default 10)",
    )
    add(
        "--mask-namespace",
        default=_env("POLLER_MASK_NAMESPACE", DEFAULT_MASK_NAMESPACE),
        help="namespace of the Secrets masking /key/generate's echo (function.mask), whose "
        "Request is gone and which the poller deletes; empty: never (POLLER_MASK_NAMESPACE; "
        f"default {DEFAULT_MASK_NAMESPACE})",
    )
    add(
        "--mask-gc-interval",
        type=float,
        default=float(_env("POLLER_MASK_GC_INTERVAL", str(DEFAULT_MASK_GC_INTERVAL))),
        help="seconds between two collections of mask Secrets (POLLER_MASK_GC_INTERVAL; "
        f"default {DEFAULT_MASK_GC_INTERVAL:g})",
    )
    add(
        "--mask-min-age",
        type=float,
        default=float(_env("POLLER_MASK_MIN_AGE", str(DEFAULT_MASK_MIN_AGE))),
        help="seconds an orphaned mask Secret must have existed before it is deleted, so that "
        "a Request being made is never raced (POLLER_MASK_MIN_AGE; "
        f"default {DEFAULT_MASK_MIN_AGE:g})",
    )
    add(
        "--log-level",
        default=_env("POLLER_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"],
        help="log level (POLLER_LOG_LEVEL; default INFO)",
    )
