"""A second OpenAI-compatible gateway benched beside Routegate in the same run: the peer.

The peer is any gateway that forwards an OpenAI chat request to the bench upstream. It is
either already running (``--peer-url``, with ``--peer-pid`` for its memory and CPU) or started
by the harness (``--peer-cmd``, optionally with a config template ``--peer-config``). In the
command, the template and ``--peer-url`` these placeholders are filled in (other braces are
left alone): ``{port}`` a free port for the peer, ``{config}`` the filled-in template's path,
``{upstream}`` the bench upstream's base URL (ending in ``/v1``), ``{upstream_host}``,
``{upstream_port}``. A started peer runs in its own session with an environment scrubbed of
provider keys and proxies (plus ``--peer-env``), counts as ready once it answers the bench
request with 200, and is stopped by its process group: SIGTERM, SIGKILL after ``--peer-grace``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import msgspec

from gateway.bench import procs
from gateway.bench.client import Target, build_target
from gateway.bench.setup import start_gateway

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_RESERVED = ("direct", "gateway")
_SECRET_OPTIONS = ("--key", "--peer-header", "--peer-env")


class Peer(NamedTuple):
    name: str
    target: Target
    pid: int | None  # for memory and CPU; None when unknown


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` for the names in ``values``; leave any other brace text as it is."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def parse_pair(text: str, sep: str) -> tuple[str, str]:
    """``'Name: value'`` (sep ``:``) or ``NAME=VALUE`` (sep ``=``), stripped; ValueError if bad."""
    name, found, value = text.partition(sep)
    if not found or not name.strip() or any(c.isspace() for c in name.strip()):
        raise ValueError(f"expected NAME{sep}VALUE, got {text!r}")
    return name.strip(), value.strip()


def with_model(body: bytes, model: str | None) -> bytes:
    """The same JSON request with only ``model`` replaced (the peer may name models its way)."""
    if model is None:
        return body
    data = msgspec.json.decode(body)
    data["model"] = model
    return msgspec.json.encode(data)


def redact(argv: list[str]) -> list[str]:
    """``argv`` for the report, with keys, headers and environment values hidden."""
    out: list[str] = []
    hide = False
    for arg in argv:
        name, eq, _ = arg.partition("=")
        if hide:
            out.append("…")
        elif eq and name in _SECRET_OPTIONS:
            out.append(f"{name}=…")
        else:
            out.append(arg)
        hide = not hide and arg in _SECRET_OPTIONS
    return out


def add_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("peer", "another OpenAI-compatible gateway, benched in the same run")
    g.add_argument("--peer-url", help="peer base URL (default with --peer-cmd: 127.0.0.1:{port})")
    g.add_argument("--peer-path", default="/v1/chat/completions", help="chat path on the peer")
    g.add_argument("--peer-model", help="model sent to the peer (default: Routegate's)")
    g.add_argument("--peer-header", action="append", default=[], metavar="'NAME: VALUE'")
    g.add_argument("--peer-name", default="peer", help="the peer's label in the report")
    g.add_argument("--peer-pid", type=int, help="PID of a running --peer-url, for memory and CPU")
    g.add_argument("--peer-cmd", help="command that runs the peer in the foreground")
    g.add_argument("--peer-config", type=Path, help="config template, filled in as {config}")
    g.add_argument("--peer-env", action="append", default=[], metavar="NAME=VALUE")
    g.add_argument("--peer-grace", type=float, default=5.0, help="seconds from SIGTERM to KILL")
    g.add_argument(
        "--peer-routegate",
        metavar="'SERVE ARGS'",
        help="the peer is a second Routegate started like the first, plus these `serve` "
        "arguments ('' for none): one setting or build against another",
    )
    g.add_argument(
        "--peer-source",
        type=Path,
        metavar="DIR",
        help="with --peer-routegate: run that checkout's python/ folder (another build)",
    )


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Validate the peer options; sets ``args.peer`` (bool), ``peer_headers``, ``peer_env_map``."""
    routegate = args.peer_routegate is not None
    args.peer = bool(args.peer_url or args.peer_cmd or routegate)
    extra = args.peer_pid or args.peer_config or args.peer_env or args.peer_header
    if not args.peer and (extra or args.peer_model or args.peer_source):
        p.error("--peer-* options need --peer-url, --peer-cmd or --peer-routegate")
    if routegate and (args.peer_url or args.peer_cmd or extra):
        p.error("--peer-routegate starts its own peer: no --peer-url/cmd/pid/config/env/header")
    if args.peer_source and not routegate:
        p.error("--peer-source needs --peer-routegate")
    if args.peer_cmd and args.peer_pid:
        p.error("--peer-pid is for a running --peer-url, not with --peer-cmd")
    if args.peer_config and not args.peer_cmd:
        p.error("--peer-config needs --peer-cmd")
    name = args.peer_name
    if not name or name in _RESERVED or "," in name:
        p.error(f"--peer-name must be non-empty, not {_RESERVED}, without commas")
    if not args.peer_path.startswith("/"):
        p.error("--peer-path must start with /")
    try:
        args.peer_headers = dict(parse_pair(h, ":") for h in args.peer_header)
        args.peer_env_map = dict(parse_pair(e, "=") for e in args.peer_env)
    except ValueError as exc:
        p.error(str(exc))


def settings(args: argparse.Namespace) -> dict[str, object]:
    """What the report records about the peer (header and environment names only)."""
    if not args.peer:
        return {}
    keys = (
        *("peer_name", "peer_url", "peer_path", "peer_model", "peer_cmd", "peer_config"),
        *("peer_routegate", "peer_source"),
    )
    out: dict[str, object] = {
        k: str(getattr(args, k)) for k in keys if getattr(args, k) is not None
    }
    if args.peer_headers:
        out["peer_headers"] = sorted(args.peer_headers)
    if args.peer_env_map:
        out["peer_env"] = sorted(args.peer_env_map)
    return out


def start(
    args: argparse.Namespace,
    upstream_base: str,
    body: bytes | Sequence[bytes],
    tmp: Path,
    stack: contextlib.ExitStack,
) -> Peer | None:
    """Start the peer if asked (stopped when ``stack`` closes); None when there is no peer.
    ``body`` is the request, or the requests sent in turn (``--prompts``), each with its
    ``model`` as the peer names it."""
    if not args.peer:
        return None
    bodies = [
        with_model(one, args.peer_model) for one in ([body] if isinstance(body, bytes) else body)
    ]
    if args.peer_routegate is not None:
        return _start_routegate(args, upstream_base, bodies, tmp, stack)
    up = urlsplit(upstream_base)
    values = {
        "upstream": upstream_base.rstrip("/"),
        "upstream_host": up.hostname or "127.0.0.1",
        "upstream_port": str(up.port or 80),
    }
    proc: subprocess.Popen[bytes] | None = None
    log_path = tmp / "peer.log"
    if args.peer_cmd:
        values["port"] = str(procs.free_port())
        if args.peer_config is not None:
            config = tmp / f"peer-{args.peer_config.name}"
            config.write_text(fill(args.peer_config.read_text(), values))
            values["config"] = str(config)
        argv = [fill(arg, values) for arg in shlex.split(args.peer_cmd)]
        env = procs.child_env(args.peer_env_map, scrub=True)
        log = stack.enter_context(log_path.open("wb"))
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        stack.callback(procs.stop, proc, args.peer_grace)
    base = fill(args.peer_url or "http://127.0.0.1:{port}", values).rstrip("/")
    url = base + args.peer_path
    if proc is not None:
        _wait_answering(
            url, bodies[0], args.peer_headers, proc=proc, timeout=args.ready_timeout, log=log_path
        )
    pid = proc.pid if proc is not None else args.peer_pid
    return Peer(args.peer_name, build_target(url, bodies, args.peer_headers), pid)


def _wait_answering(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    proc: subprocess.Popen[bytes],
    timeout: float,
    log: Path,
) -> None:
    """Poll with the bench request itself until it gets a 200: no health path to know."""
    headers = {"Content-Type": "application/json", **headers}
    procs.wait_ready(
        url,
        proc,
        timeout,
        log,
        "peer",
        send=lambda client: client.post(url, content=body, headers=headers),
    )


def _start_routegate(
    args: argparse.Namespace,
    upstream_base: str,
    bodies: Sequence[bytes],
    tmp: Path,
    stack: contextlib.ExitStack,
) -> Peer:
    """A second Routegate in its own folder, same workers and governance as the first."""
    folder = tmp / "peer-routegate"
    folder.mkdir()
    base, key, pid = start_gateway(
        upstream_base,
        folder,
        stack,
        workers=args.workers,
        governed=args.governed,
        ready_timeout=args.ready_timeout,
        serve_args=shlex.split(args.peer_routegate),
        source=args.peer_source,
    )
    url = base + args.peer_path
    headers = {"Authorization": f"Bearer {key}"}
    return Peer(args.peer_name, build_target(url, bodies, headers), pid)
