"""The poller's settings: each flag, its environment variable, its default and its checks."""

from __future__ import annotations

import argparse
import re
import socket
from pathlib import Path

import pytest

from function.poller.fetch import FetchMode
from function.poller.settings import Settings, add_arguments, flag_table
from function.validation import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]
# Every variable the poller reads, cleared so that the machine's own settings play no part.
ENVIRONMENT = (
    "POLLER_INTERVAL",
    "POLLER_JITTER",
    "POLLER_ONCE",
    "POLLER_LITELLM_TIMEOUT",
    "POLLER_LITELLM_DEADLINE",
    "POLLER_CYCLE_DEADLINE",
    "POLLER_LITELLM_MAX_PAGES",
    "POLLER_LITELLM_MAX_BYTES",
    "POLLER_FETCH_MODE",
    "POLLER_CONCURRENCY",
    "POLLER_BACKOFF_BASE",
    "POLLER_BACKOFF_MAX",
    "POLLER_METRICS_ADDRESS",
    "POLLER_LEADER_ELECT",
    "POLLER_LEASE_NAME",
    "POLLER_LEASE_NAMESPACE",
    "POD_NAMESPACE",
    "POLLER_LEASE_DURATION",
    "POLLER_IDENTITY",
    "POD_NAME",
    "KUBECONFIG",
    "POLLER_KUBE_CONTEXT",
    "POLLER_KUBE_TIMEOUT",
    "POLLER_MASK_NAMESPACE",
    "POLLER_MASK_GC_INTERVAL",
    "POLLER_MASK_MIN_AGE",
    "POLLER_LOG_LEVEL",
)


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def parse(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return Settings.from_args(parser.parse_args(list(argv)))


def test_the_flags_defaults() -> None:
    settings = parse()
    assert settings.identity == socket.gethostname()
    assert settings == Settings(
        interval=60.0,
        jitter=0.1,
        once=False,
        litellm_timeout=10.0,
        litellm_deadline=120.0,
        cycle_deadline=None,
        litellm_max_pages=1000,
        litellm_max_bytes=8 * 1024 * 1024,
        fetch_mode=FetchMode.BULK,
        concurrency=4,
        backoff_base=5.0,
        backoff_max=300.0,
        write_retries=5,
        metrics_address=":8089",
        leader_elect=True,
        lease_name="function-litellm-keys-poller",
        lease_namespace="crossplane-system",
        lease_duration=15.0,
        identity=socket.gethostname(),
        kubeconfig=None,
        kube_context=None,
        kube_timeout=10.0,
        log_level="INFO",
        mask_namespace="crossplane-system",
        mask_gc_interval=600.0,
        mask_min_age=600.0,
    )
    assert settings.cycle_seconds == 60.0


def test_each_variable_sets_its_flag(env: pytest.MonkeyPatch) -> None:
    values = {
        "POLLER_INTERVAL": "5",
        "POLLER_JITTER": "0.5",
        "POLLER_ONCE": "yes",
        "POLLER_LITELLM_TIMEOUT": "3",
        "POLLER_LITELLM_DEADLINE": "30",
        "POLLER_CYCLE_DEADLINE": "20",
        "POLLER_LITELLM_MAX_PAGES": "7",
        "POLLER_LITELLM_MAX_BYTES": "1024",
        "POLLER_FETCH_MODE": "per-key",
        "POLLER_CONCURRENCY": "2",
        "POLLER_BACKOFF_BASE": "1",
        "POLLER_BACKOFF_MAX": "9",
        "POLLER_METRICS_ADDRESS": "",
        "POLLER_LEADER_ELECT": "off",
        "POLLER_LEASE_NAME": "lease",
        "POLLER_LEASE_NAMESPACE": "leases",
        "POLLER_LEASE_DURATION": "4",
        "POLLER_IDENTITY": "me",
        "KUBECONFIG": "/kube/config",
        "POLLER_KUBE_CONTEXT": "ctx",
        "POLLER_KUBE_TIMEOUT": "6",
        "POLLER_MASK_NAMESPACE": "masks",
        "POLLER_MASK_GC_INTERVAL": "60",
        "POLLER_MASK_MIN_AGE": "0",
        "POLLER_LOG_LEVEL": "debug",
    }
    for name, value in values.items():
        env.setenv(name, value)
    assert parse() == Settings(
        interval=5.0,
        jitter=0.5,
        once=True,
        litellm_timeout=3.0,
        litellm_deadline=30.0,
        cycle_deadline=20.0,
        litellm_max_pages=7,
        litellm_max_bytes=1024,
        fetch_mode=FetchMode.PER_KEY,
        concurrency=2,
        backoff_base=1.0,
        backoff_max=9.0,
        metrics_address="",
        leader_elect=False,
        lease_name="lease",
        lease_namespace="leases",
        lease_duration=4.0,
        identity="me",
        kubeconfig="/kube/config",
        kube_context="ctx",
        kube_timeout=6.0,
        log_level="DEBUG",
        mask_namespace="masks",
        mask_gc_interval=60.0,
        mask_min_age=0.0,
    )


def test_a_flag_wins_over_its_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("POLLER_INTERVAL", "5")
    env.setenv("POLLER_LEADER_ELECT", "false")
    settings = parse("--interval", "7", "--leader-elect", "true", "--once")
    assert (settings.interval, settings.leader_elect, settings.once) == (7.0, True, True)


def test_fallback_variables_and_empty_values(env: pytest.MonkeyPatch) -> None:
    env.setenv("POD_NAMESPACE", "pod-ns")
    env.setenv("POD_NAME", "pod-0")
    env.setenv("POLLER_CYCLE_DEADLINE", "")
    env.setenv("KUBECONFIG", "")
    env.setenv("POLLER_MASK_NAMESPACE", "")  # empty: never collect the mask Secrets
    env.setenv("POLLER_ONCE", "maybe")  # a variable that is not "true" is false
    settings = parse()
    assert (settings.lease_namespace, settings.identity) == ("pod-ns", "pod-0")
    assert (settings.cycle_deadline, settings.kubeconfig, settings.mask_namespace) == (
        None,
        None,
        "",
    )
    assert settings.once is False
    env.setenv("POLLER_LEASE_NAMESPACE", "own")
    env.setenv("POLLER_IDENTITY", "own-name")
    assert (parse().lease_namespace, parse().identity) == ("own", "own-name")


def test_backoff_max_is_at_least_the_base() -> None:
    assert parse("--backoff-base", "50", "--backoff-max", "10").backoff_max == 50.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--interval", "0"], "--interval must be greater than 0"),
        (["--litellm-timeout", "-1"], "--litellm-timeout must be greater than 0"),
        (["--litellm-deadline", "0"], "--litellm-deadline must be greater than 0"),
        (["--kube-timeout", "0"], "--kube-timeout must be greater than 0"),
        (["--lease-duration", "0"], "--lease-duration must be greater than 0"),
        (["--backoff-base", "0"], "--backoff-base must be greater than 0"),
        (["--mask-gc-interval", "0"], "--mask-gc-interval must be greater than 0"),
        (["--cycle-deadline", "0"], "--cycle-deadline must be greater than 0"),
        (["--jitter", "1"], "--jitter must be a fraction in [0, 1)"),
        (["--jitter", "-0.1"], "--jitter must be a fraction in [0, 1)"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--litellm-max-pages", "0"], "--litellm-max-pages must be at least 1"),
        (["--litellm-max-bytes", "0"], "--litellm-max-bytes must be at least 1"),
        (["--mask-min-age", "-1"], "--mask-min-age must be 0 or more"),
        (
            ["--mask-namespace", "Not_A_Label"],
            "--mask-namespace must be a namespace name (a DNS label), or empty",
        ),
    ],
)
def test_a_bad_value_is_refused_by_name(argv: list[str], message: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse(*argv)
    assert str(refused.value) == message


def test_help_names_each_variable_and_default() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    for name in ENVIRONMENT:
        assert name in text, name
    for shown in ("default 60)", "default 0.1)", "default 8 MiB)", "default bulk)", "default 600)"):
        assert shown in text, shown


def test_docs_flag_table_is_the_settings_table() -> None:
    """docs/poller.md lists every flag with its variables, in the table's order."""
    text = (ROOT / "docs" / "poller.md").read_text()
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`--"):
            variables = tuple(re.findall(r"`([A-Z_]+)", cells[1]))
            documented.append((cells[0].strip("`"), variables))
    assert documented == [(flag, env) for flag, env, _ in flag_table()]
