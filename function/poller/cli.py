"""The `function-litellm-keys poll` subcommand.

`function.main` calls `configure_parser(parser)` to add the flags (see
`settings`) and `run(args)` to start: logging (keys redacted), the
Kubernetes client (in-cluster inside a pod, else the kubeconfig), the
metrics server, leader election, then `--once` or the loop.
"""

from __future__ import annotations

import argparse
import logging
import sys

from function.poller.cycle import Poller
from function.poller.kube import KubeCluster, api_client
from function.poller.leader import LeaderElector
from function.poller.loop import Runner
from function.poller.metrics import Health, Metrics, serve
from function.poller.redact import RedactingFilter
from function.poller.settings import Settings, add_arguments
from function.validation import InvalidInputError

log = logging.getLogger("function.poller")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the poller's flags to the `poll` subcommand."""
    parser.description = (
        "Poll LiteLLM for the spend and state of every VirtualKey and write them to its status."
    )
    add_arguments(parser)


def configure_logging(level: str) -> None:
    """Log to stderr, one line a record, keys redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Request lines of the HTTP clients carry nothing secret, but are noise.
    for noisy in ("httpx", "httpcore", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def run(args: argparse.Namespace) -> int:
    """Run the poller; the process's exit code."""
    try:
        settings = Settings.from_args(args)
    except InvalidInputError as e:
        print(f"poll: {e}", file=sys.stderr)  # noqa: T201 - a CLI error for a person.
        return 2
    configure_logging(settings.log_level)
    try:
        cluster = KubeCluster(
            api_client(settings.kubeconfig, settings.kube_context), timeout=settings.kube_timeout
        )
    except Exception as e:  # any configuration failure ends the same way
        log.error("cannot configure the Kubernetes client: %s", e)
        return 2
    metrics = Metrics()
    health = Health(stale_after=3 * settings.interval + 60)
    server = serve(metrics, health, settings.metrics_address) if settings.metrics_address else None
    poller = Poller(cluster, settings, metrics)
    elector = None
    if settings.leader_elect and not settings.once:
        elector = LeaderElector(
            cluster,
            settings.lease_namespace,
            settings.lease_name,
            settings.identity,
            settings.lease_duration,
        )
    runner = Runner(poller, settings, health, elector)
    runner.install_signal_handlers()
    log.info(
        "polling every %.0f s (fetch mode %s, leader election %s)",
        settings.interval,
        settings.fetch_mode,
        "on" if elector else "off",
    )
    try:
        return runner.run_once() if settings.once else runner.run()
    finally:
        if server is not None:
            server.shutdown()
        if settings.once:
            poller.close()
