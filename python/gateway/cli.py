"""The ``routegate`` command: serve, config check, models, keys, budgets, usage, bench.

``serve`` validates the config and bootstraps the store (the ``default`` workspace, the admin
key and a test key, printed once at first start) in this process, before granian starts any
worker, so workers never race to create them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from granian import Granian
from granian.constants import Interfaces, Loops

from gateway import cli_admin
from gateway.bench import main as bench_main
from gateway.config import Config, ConfigError, load_config
from gateway.edge.auth import derive_hash_key, hash_secret, new_key_record, utc_now
from gateway.settings import Settings, load_master_key
from gateway.store import Store, open_store
from gateway.store.private_files import private_dir
from gateway.store.records import Scope, Workspace

DEFAULT_HOST = "127.0.0.1"
_HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
ALL_SCOPES: tuple[Scope, ...] = ("inference", "read", "admin")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routegate", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="YAML config (default: $ROUTEGATE_CONFIG)")
    serve.add_argument("--host", default=os.environ.get("ROUTEGATE_HOST", DEFAULT_HOST))
    serve.add_argument("--port", type=int, default=int(os.environ.get("ROUTEGATE_PORT", "8080")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("ROUTEGATE_WORKERS", "1")))
    serve.add_argument(
        "--interface",
        choices=["rsgi", "asgi"],
        default=os.environ.get("ROUTEGATE_INTERFACE", "rsgi"),
        help="granian's interface to the app: rsgi (its native one, less CPU per request) or "
        "asgi; the same handlers either way",
    )
    serve.add_argument("--data-dir", help="state directory (default: $ROUTEGATE_DATA_DIR)")
    serve.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default=os.environ.get("ROUTEGATE_LOOP", "uvloop" if _HAS_UVLOOP else "asyncio"),
        help="event loop (uvloop where installed: it is a dependency except on Windows)",
    )
    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate a config file without serving")
    check.add_argument("file", nargs="?", help="YAML config (default: $ROUTEGATE_CONFIG)")
    models = commands.add_parser("models", help="list the catalog's models and offers")
    models.add_argument("--config", help="YAML config (default: $ROUTEGATE_CONFIG)")
    cli_admin.register(commands)
    commands.add_parser(
        "bench", help="run the load harness (see benches/README.md)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        return bench_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command == "serve":
        return serve(args)
    if args.command == "config":
        return config_check(args.file or os.environ.get("ROUTEGATE_CONFIG"))
    if args.command == "models":
        return list_models(args.config or os.environ.get("ROUTEGATE_CONFIG"))
    if args.command in cli_admin.COMMANDS:
        return cli_admin.run(args)
    return 2


def _load_or_report(load: Callable[[], Config]) -> Config | None:
    """Load a config; on failure print its file:line:field error and return None."""
    try:
        return load()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def config_check(path: str | None) -> int:
    config = _load_or_report(lambda: load_config(path))
    if config is None:
        return 1
    print(
        f"{path or 'built-in catalog'}: OK ({len(config.providers)} providers, "
        f"{len(config.models)} models, {len(config.offers)} offers, "
        f"{len(config.policies)} policies)"
    )
    return 0


def list_models(path: str | None) -> int:
    config = _load_or_report(lambda: load_config(path))
    if config is None:
        return 1
    for model in sorted(config.models, key=lambda m: m.id):
        providers = sorted({o.provider for o in config.offers if o.model == model.id})
        print(f"{model.id:28} {model.kind:9} {', '.join(providers)}")
    return 0


def serve(args: argparse.Namespace) -> int:
    if args.config:
        os.environ["ROUTEGATE_CONFIG"] = str(Path(args.config).resolve())
    if args.data_dir:
        os.environ["ROUTEGATE_DATA_DIR"] = str(Path(args.data_dir).resolve())
    settings = Settings.from_env()
    os.environ["ROUTEGATE_DATA_DIR"] = str(settings.data_dir)
    private_dir(settings.data_dir)
    config = _load_or_report(settings.load_config)
    if config is None:
        return 1
    store = open_store(settings.store_url(config), settings.data_dir, config.defaults.store_pool)
    try:
        check_master_key(store, _hash_key(settings))
        lines = bootstrap(store, settings)
    except MasterKeyMismatch as error:
        print(f"routegate: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(
        f"Routegate serving on http://{args.host}:{args.port} "
        f"(data: {settings.data_dir}, workers: {args.workers})",
        flush=True,
    )
    for line in lines:
        print(line, flush=True)
    rsgi = args.interface == "rsgi"
    Granian(
        "gateway.edge.rsgi:create_rsgi_app" if rsgi else "gateway.edge.app:create_app",
        factory=True,
        interface=Interfaces.RSGI if rsgi else Interfaces.ASGI,
        address=args.host,
        port=args.port,
        workers=args.workers,
        loop=Loops(args.loop),
        log_access=False,
    ).serve()
    return 0


class MasterKeyMismatch(Exception):
    pass


def check_master_key(store: Store, hash_key: bytes) -> None:
    """Gateways sharing a store must share the master key: keys hashed under another one
    would all answer 401. The store keeps a fingerprint of the first gateway's hash key."""
    fingerprint = hashlib.sha256(b"routegate/fingerprint/v1" + hash_key).hexdigest()[:16]
    stored = store.get_meta("master_key_fingerprint")
    if stored is None:
        store.set_meta("master_key_fingerprint", fingerprint)
    elif stored != fingerprint:
        raise MasterKeyMismatch(
            "this store was set up under a different master key: every gateway sharing a "
            "store needs the same ROUTEGATE_MASTER_KEY (or the same data directory's "
            "master.key)."
        )


def bootstrap(store: Store, settings: Settings) -> list[str]:
    """Create what a first start creates; return the lines to print (secrets shown once)."""
    hash_key = _hash_key(settings)
    lines: list[str] = []
    workspace = store.get_workspace_by_slug("default")
    if workspace is None:
        workspace = Workspace(id="ws_default", name="Default", slug="default", created_at=utc_now())
        store.create_workspace(workspace)
        lines.append(f'First start: created workspace "default" ({workspace.id}).')
    if settings.admin_key:
        if store.get_key_by_hash(hash_secret(hash_key, settings.admin_key)) is None:
            _, record = new_key_record(
                hash_key=hash_key,
                workspace_id=workspace.id,
                name="bootstrap admin",
                mode="live",
                scopes=ALL_SCOPES,
                gateway_wide=True,
                secret=settings.admin_key,
            )
            store.create_key(record)
        lines.append("  admin key: from ROUTEGATE_ADMIN_KEY")
    elif store.get_meta("bootstrap_admin_key") is None:
        secret, record = new_key_record(
            hash_key=hash_key,
            workspace_id=workspace.id,
            name="bootstrap admin",
            mode="live",
            scopes=ALL_SCOPES,
            gateway_wide=True,
        )
        store.create_key(record)
        store.set_meta("bootstrap_admin_key", record.id)
        lines.append(f"  admin key: {secret}   (gateway-wide; shown once)")
    if store.get_meta("bootstrap_test_key") is None:
        secret, record = new_key_record(
            hash_key=hash_key,
            workspace_id=workspace.id,
            name="quick start test key",
            mode="test",
            scopes=("inference",),
        )
        store.create_key(record)
        store.set_meta("bootstrap_test_key", record.id)
        lines.append(f"  test key:  {secret}   (mock provider, free; shown once)")
    return lines


def _hash_key(settings: Settings) -> bytes:
    return derive_hash_key(load_master_key(settings.data_dir))


if __name__ == "__main__":
    raise SystemExit(main())
