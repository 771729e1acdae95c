"""The ``multusd`` command: one subcommand per entry of :data:`COMMANDS`.

Each subcommand is a pair of functions — ``add_arguments(parser)`` and ``run(args) -> int`` —
registered in one table, so adding ``run``, ``install``, ``demo`` … is one entry and a module,
and ``main`` stays a dispatcher. Heavy imports happen inside the ``run`` functions: ``multusd
version`` must not pay for aiohttp, and the daemon must not pay for the local API server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from multusd import __version__


@dataclass(frozen=True)
class Command:
    """A subcommand: its help line, how it takes arguments, what it runs."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------ version


def _version_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def _version_run(args: argparse.Namespace) -> int:
    del args
    print(f"multusd {__version__}")
    return 0


# ------------------------------------------------------------------------------ localapi


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _localapi_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="address to serve on; port 0 picks a free one (default 127.0.0.1:0)",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="write a kubeconfig for this server here (default: a temp file, removed on exit)",
    )
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every request")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a throw-away CA (needs openssl)")
    parser.add_argument(
        "--seed",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="YAML/JSON objects (multi-document, *List kinds ok) to create at start; repeatable",
    )
    parser.add_argument("--history-size", type=int, default=1000, help="watch history kept (default 1000)")
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how often watches asking for bookmarks get one (default 60)",
    )


def _localapi_run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    import yaml

    from multusd.kube.localapi import LocalApi, serve_forever

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    api = LocalApi(
        token=args.token,
        tls=args.tls,
        history_size=args.history_size,
        bookmark_interval_seconds=args.bookmark_interval,
    )
    if args.token and not args.tls:
        # client-go (kubectl) sends kubeconfig credentials only over TLS; kubernetes_asyncio always does
        logging.getLogger(__name__).warning("--token without --tls: kubectl will not send the token")
    try:
        for seed in args.seed:
            with seed.open() as fh:
                count = api.load_seed(yaml.safe_load_all(fh))
            logging.getLogger(__name__).info("seeded %d objects from %s", count, seed)
    except (OSError, yaml.YAMLError, ValueError, KeyError) as exc:
        print(f"multusd localapi: cannot load seed: {exc}", file=sys.stderr)
        return 2

    def announce(path: str) -> None:
        print(path, flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        host, port = args.listen
        await serve_forever(api, host, port, args.kubeconfig, stop, announce)

    try:
        asyncio.run(main())
    except (OSError, RuntimeError) as exc:
        print(f"multusd localapi: {exc}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------ run


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    from multusd.config import DEFAULT_CONFIG_PATH, describe_fields

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "daemon-config.json keys (default in parentheses):\n" + describe_fields()
    parser.add_argument(
        "--config",
        "-config",
        default=DEFAULT_CONFIG_PATH,
        metavar="PATH",
        help=f"daemon-config.json (default {DEFAULT_CONFIG_PATH}); a missing file means all defaults",
    )


def _run_run(args: argparse.Namespace) -> int:
    from multusd.config import ConfigError, load_config, parse_config

    try:
        cfg = load_config(args.config) if Path(args.config).exists() else parse_config({}, f"{args.config} (absent)")
    except ConfigError as exc:
        print(f"multusd: {exc}", file=sys.stderr)
        return 1
    from multusd import daemon

    return daemon.run(cfg)


COMMANDS: dict[str, Command] = {
    "version": Command("print the version", _version_arguments, _version_run),
    "run": Command("run the daemon (the DaemonSet's main container)", _run_arguments, _run_run),
    "localapi": Command("run the in-memory Kubernetes API server (tests, demo)", _localapi_arguments, _localapi_run),
}


def make_parser() -> argparse.ArgumentParser:
    """The argument parser, built from :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="multusd", description="Multus CNI thick plugin for K3s, in Python.")
    parser.add_argument("--version", action="version", version=f"multusd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``multusd`` console script."""
    args = make_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
