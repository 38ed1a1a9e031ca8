"""The `function-litellm-keys` command: serve, render and poll.

- `serve`: the composition function's gRPC server (what Crossplane runs).
- `render FILE`: the function on a VirtualKey file, no cluster needed.
- `poll`: the status poller sidecar (see `function.poller`).
- `poller-rbac POLICY...`: the poller's master-key Roles for the instances
  the TenancyPolicies declare (`function.poller.rbac`).

Every flag can also come from an environment variable, named in its help.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from crossplane.function import runtime
from crossplane.function.logging import Level

from function import __version__, logs
from function.fn import DEFAULT_CACHE_BYTES, FunctionRunner
from function.poller import cli as poller_cli
from function.poller.rbac import master_key_rbac
from function.render import EXAMPLE, RenderError, dump, load_documents, render
from function.tenancy.policy import POLICY_KIND
from function.validation import InvalidInputError


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _serve(args: argparse.Namespace) -> int:
    logs.configure(Level.DEBUG if args.debug else Level.INFO)
    if not args.insecure and not args.tls_certs_dir:
        print(  # noqa: T201 - a CLI error for a person.
            "serve: give --tls-certs-dir (or TLS_SERVER_CERTS_DIR), or --insecure for local use",
            file=sys.stderr,
        )
        return 2
    creds = runtime.load_credentials(args.tls_certs_dir) if args.tls_certs_dir else None
    runtime.serve(
        FunctionRunner(cache_bytes=args.cache_bytes),
        args.address,
        creds=creds,
        insecure=args.insecure,
    )
    return 0


def _read(path: str | None, what: str) -> str:
    if path is None:
        return EXAMPLE
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        return data.decode("utf-8")
    except OSError as e:
        msg = f"cannot read {what} {path}: {e.strerror}"
        raise RenderError(msg) from None
    except UnicodeDecodeError as e:
        msg = f"{what} {path} is not UTF-8 text (at byte {e.start}); save it as UTF-8"
        raise RenderError(msg) from None


def _render(args: argparse.Namespace) -> int:
    logs.configure(Level.DISABLED if not args.debug else Level.DEBUG)
    try:
        xrs = load_documents(_read(args.file, "VirtualKey file"), "the VirtualKey file")
        if len(xrs) != 1:
            msg = f"the VirtualKey file must hold exactly one object, found {len(xrs)}"
            raise RenderError(msg)
        observed = (
            load_documents(_read(args.observed, "observed file"), "the observed file")
            if args.observed
            else []
        )
        fn_input = None
        if args.input:
            inputs = load_documents(_read(args.input, "input file"), "the input file")
            fn_input = inputs[0] if inputs else None
        required = (
            load_documents(_read(args.required_resources, "required resources"), "that file")
            if args.required_resources
            else []
        )
        docs, fatal = render(xrs[0], observed, fn_input, required)
    except RenderError as e:
        print(f"render: {e}", file=sys.stderr)  # noqa: T201
        return 2
    sys.stdout.write(dump(docs))
    return 1 if fatal else 0


def _poller_rbac(args: argparse.Namespace) -> int:
    try:
        policies = [
            doc
            for path in args.policies
            for doc in load_documents(_read(path, "TenancyPolicy file"), path)
            if doc.get("kind") == POLICY_KIND
        ]
        documents = master_key_rbac(policies, args.namespace)
    except (RenderError, InvalidInputError) as e:
        print(f"poller-rbac: {e}", file=sys.stderr)  # noqa: T201
        return 2
    sys.stdout.write(dump(documents) if documents else "")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(
        prog="function-litellm-keys",
        description="LiteLLM virtual keys managed the Crossplane way.",
    )
    top.add_argument("--version", action="version", version=__version__)
    sub = top.add_subparsers(dest="command", required=True)

    _add_serve(sub)
    _add_render(sub)
    poll = sub.add_parser("poll", help="run the status poller (see docs/poller.md)")
    poller_cli.configure_parser(poll)
    poll.set_defaults(run=poller_cli.run)

    rbac = sub.add_parser(
        "poller-rbac",
        help="print the poller's master-key Roles for the instances TenancyPolicies declare",
    )
    rbac.add_argument("policies", nargs="+", help="TenancyPolicy YAML files ('-' for stdin)")
    rbac.add_argument(
        "--namespace", default="crossplane-system", help="the poller's namespace (the function's)"
    )
    rbac.set_defaults(run=_poller_rbac)
    return top


def _add_serve(sub: Any) -> None:
    """`serve`: every flag also read from the environment the package's pod sets."""
    serve = sub.add_parser("serve", help="serve the composition function over gRPC")
    serve.add_argument(
        "--address",
        default=_env("FUNCTION_ADDRESS", "0.0.0.0:9443"),
        help="address to listen on (FUNCTION_ADDRESS; default 0.0.0.0:9443)",
    )
    serve.add_argument(
        "--tls-certs-dir",
        default=_env("TLS_SERVER_CERTS_DIR"),
        help="directory with tls.crt, tls.key and ca.crt (TLS_SERVER_CERTS_DIR)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        default=_env("FUNCTION_INSECURE", "") == "true",
        help="serve without TLS, for local development (FUNCTION_INSECURE=true)",
    )
    serve.add_argument(
        "--cache-bytes",
        type=int,
        default=int(_env("FUNCTION_CACHE_BYTES", str(DEFAULT_CACHE_BYTES)) or DEFAULT_CACHE_BYTES),
        help="bytes of responses kept for repeated identical requests; 0 disables "
        f"(FUNCTION_CACHE_BYTES; default {DEFAULT_CACHE_BYTES}, 64 MiB)",
    )
    serve.add_argument("--debug", action="store_true", help="log at debug level")
    serve.set_defaults(run=_serve)


def _add_render(sub: Any) -> None:
    """`render`: what `crossplane render` would show, without a cluster."""
    rend = sub.add_parser("render", help="run the function on a VirtualKey file, print YAML")
    rend.add_argument(
        "file", nargs="?", help="VirtualKey YAML ('-' for stdin; default: the seed example)"
    )
    rend.add_argument("--observed", help="YAML stream of observed composed resources")
    rend.add_argument("--input", help="YAML file with the function input (kind Input)")
    rend.add_argument(
        "--required-resources",
        help="YAML stream of the objects Crossplane would fetch for the function: "
        "TenancyPolicies and the tenant's Namespace (without it, nothing is granted)",
    )
    rend.add_argument("--debug", action="store_true", help="log at debug level")
    rend.set_defaults(run=_render)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `function-litellm-keys` command."""
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
