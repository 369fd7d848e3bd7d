"""Child processes of the harness (upstream, gateway, peer), their memory and CPU, from /proc.

Each child runs in its own session so it and every worker it forks can be stopped by its
process group, whatever happens to the harness run. Memory is the sum over the process tree:
RSS counts pages shared between forked workers once per process, PSS splits them fairly,
so both are reported.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

import httpx

# The directory holding the `gateway` package, as imported (not symlink-resolved).
_PKG_ROOT = Path(os.path.abspath(__file__)).parents[2]


def child_env(extra: dict[str, str] | None = None, *, scrub: bool = False) -> dict[str, str]:
    """The harness's environment, plus the package root on PYTHONPATH when run from source.

    ``scrub`` drops provider keys, proxies and ``ROUTEGATE_*`` settings, so a gateway started
    for the bench can route only to the bench upstream, never to a paid provider.
    """
    env = {k: v for k, v in os.environ.items() if not (scrub and _scrubbed(k))}
    if _PKG_ROOT.name not in ("site-packages", "dist-packages"):
        parts = [str(_PKG_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    env.update(extra or {})
    return env


def _scrubbed(name: str) -> bool:
    upper = name.upper()
    return upper.endswith(("_API_KEY", "_PROXY")) or upper.startswith("ROUTEGATE_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(args: list[str], env: dict[str, str], log: IO[bytes] | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if log is None else log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
    )


def start_upstream(timeout: float = 15.0) -> tuple[subprocess.Popen[bytes], int]:
    """Start the bench upstream on a free port; returns the process and the port it bound."""
    proc = spawn(["-m", "gateway.bench.upstream", "--port", "0"], child_env(), None)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("bench upstream listening on"):
        stop(proc)
        raise RuntimeError(f"bench upstream did not start (said {line!r})")
    return proc, int(line.rsplit(":", 1)[1])


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
    # Workers that outlived the leader are still in its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.stdout is not None:
        proc.stdout.close()


def wait_ready(
    url: str,
    proc: subprocess.Popen[bytes] | None,
    timeout: float,
    log: Path | None = None,
    name: str = "gateway",
    *,
    send: Callable[[httpx.Client], httpx.Response] | None = None,
) -> None:
    """Poll ``url`` (with ``send``, or a GET) until it answers 200; fail early, with the
    log's tail, if the child exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}{log_tail(log, name)}")
            try:
                resp = send(client) if send is not None else client.get(url)
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s ({last}){log_tail(log, name)}")


def log_tail(log: Path | None, name: str = "gateway", lines: int = 25) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- {name} log (tail) ---\n" + "\n".join(tail)


class Memory(NamedTuple):
    rss_kb: int
    pss_kb: int
    processes: int


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, ()))
    return pids


def _field_kb(path: str, name: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(root: int) -> Memory:
    """Summed VmRSS and Pss (kB) of the live processes in ``root``'s tree."""
    rss = pss = n = 0
    for pid in tree_pids(root):
        kb = _field_kb(f"/proc/{pid}/status", "VmRSS:")
        if kb:
            rss += kb
            pss += _field_kb(f"/proc/{pid}/smaps_rollup", "Pss:")
            n += 1
    return Memory(rss, pss, n)


_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root``'s tree, reaped children included."""
    ticks = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return ticks * _TICK_S
