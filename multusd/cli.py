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


# ------------------------------------------------------------------------------ generate-config


def _generate_config_arguments(parser: argparse.ArgumentParser) -> None:
    from multusd.config import DEFAULT_CONFIG_PATH

    parser.add_argument(
        "--config",
        "-config",
        default=DEFAULT_CONFIG_PATH,
        metavar="PATH",
        help=f"daemon-config.json (default {DEFAULT_CONFIG_PATH}); a missing file means all defaults",
    )
    parser.add_argument("--stdout", action="store_true", help="print the config instead of writing it")


def _generate_config_run(args: argparse.Namespace) -> int:
    from multusd.autoconf import CONF_MODE, EXIT_AUTOCONF, AutoconfError, render_once
    from multusd.cni.atomicfile import write_atomic
    from multusd.config import ConfigError, load_config, parse_config

    try:
        cfg = load_config(args.config) if Path(args.config).exists() else parse_config({}, f"{args.config} (absent)")
    except ConfigError as exc:
        print(f"multusd: {exc}", file=sys.stderr)
        return 1
    try:
        target, content = render_once(cfg)
    except AutoconfError as exc:
        print(f"multusd generate-config: {exc}", file=sys.stderr)
        return EXIT_AUTOCONF
    if args.stdout:
        sys.stdout.write(content.decode() + "\n")
        return 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, content, CONF_MODE)
    except OSError as exc:
        print(f"multusd generate-config: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_AUTOCONF
    print(f"wrote {target}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------ install


def _install_arguments(parser: argparse.ArgumentParser) -> None:
    from multusd import install

    def plugin_list(value: str) -> tuple[str, ...]:
        try:
            return install.parse_plugins(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Copies multus-shim and passthru (first line rewritten to the host's python3) and the --plugins\n"
        "into the host's CNI bin dir, each by tmp file + rename (safe while they run). Exit 0 ok, 1 failure.\n"
        "Example (init container, host / mounted at /host):\n"
        "  multusd install --host-root /host --bin-dir /var/lib/rancher/k3s/data/cni --plugins ipvlan,macvlan"
    )
    parser.add_argument(
        "--host-root",
        default=install.DEFAULT_HOST_ROOT,
        metavar="PATH",
        help=f"where the host's / is mounted; '/' when run on the host (default {install.DEFAULT_HOST_ROOT})",
    )
    parser.add_argument(
        "--bin-dir",
        default=install.DEFAULT_BIN_DIR,
        metavar="HOSTPATH",
        help=f"containerd's CNI bin dir as a host path, resolved under --host-root (default {install.DEFAULT_BIN_DIR})",
    )
    parser.add_argument(
        "--dest-dir",
        "-d",
        metavar="PATH",
        help="the bin dir as a container path, used as is; overrides --bin-dir (upstream install_multus -d)",
    )
    parser.add_argument(
        "--plugins",
        type=plugin_list,
        default=install.DEFAULT_PLUGINS,
        metavar="LIST",
        help=f"comma-separated extra plugins to copy, '' for none (default {','.join(install.DEFAULT_PLUGINS)})",
    )
    parser.add_argument(
        "--plugins-src",
        default=install.DEFAULT_PLUGINS_SRC,
        metavar="DIR",
        help=f"where the extra plugins are read from (default {install.DEFAULT_PLUGINS_SRC})",
    )
    parser.add_argument(
        "--shim-src",
        metavar="DIR",
        help=(
            f"directory with multus-shim and passthru (default ${install.SHIM_DIR_ENV}, "
            f"else {install.IMAGE_SHIM_DIR}, else the source checkout's shim/)"
        ),
    )
    parser.add_argument(
        "--python",
        metavar="HOSTPATH",
        help="host interpreter for the shebangs, still test-run (default: the first usable of "
        + ", ".join(install.PYTHON_CANDIDATES[:3])
        + ", /usr/bin/python3.X …)",
    )


def _install_run(args: argparse.Namespace) -> int:
    from multusd.install import InstallOptions, run_install

    options = InstallOptions(
        host_root=args.host_root,
        bin_dir=args.bin_dir,
        dest_dir=args.dest_dir,
        plugins=tuple(args.plugins),
        plugins_src=args.plugins_src,
        shim_src=args.shim_src,
        python=args.python,
    )
    return run_install(options)


# ------------------------------------------------------------------------------ validate / inspect


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    from multusd import validate

    validate.add_arguments(parser)


def _validate_run(args: argparse.Namespace) -> int:
    from multusd import validate

    return validate.run(args)


def _inspect_arguments(parser: argparse.ArgumentParser) -> None:
    from multusd import inspection

    inspection.add_arguments(parser)


def _inspect_run(args: argparse.Namespace) -> int:
    from multusd import inspection

    return inspection.run(args)


# ------------------------------------------------------------------------------ demo


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    from multusd import demo

    demo.add_arguments(parser)


def _demo_run(args: argparse.Namespace) -> int:
    from multusd import demo

    return demo.run(args)


COMMANDS: dict[str, Command] = {
    "version": Command("print the version", _version_arguments, _version_run),
    "run": Command("run the daemon (the DaemonSet's main container)", _run_arguments, _run_run),
    "install": Command(
        "install multus-shim, passthru and extra plugins on the host (the DaemonSet's init container)",
        _install_arguments,
        _install_run,
    ),
    "localapi": Command("run the in-memory Kubernetes API server (tests, demo)", _localapi_arguments, _localapi_run),
    "generate-config": Command(
        "write 00-multus.conf once (or print it) and exit", _generate_config_arguments, _generate_config_run
    ),
    "validate": Command(
        "dry-run NetworkAttachmentDefinitions and pod network annotations (files and/or --from-cluster)",
        _validate_arguments,
        _validate_run,
    ),
    "inspect": Command(
        "show the attachments multusd holds on this node, orphans, and the daemon's health",
        _inspect_arguments,
        _inspect_run,
    ),
    "demo": Command(
        "build a throwaway K3s-like node in namespaces, attach a pod with two networks, show it, clean up (root)",
        _demo_arguments,
        _demo_run,
    ),
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
