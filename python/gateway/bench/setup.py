"""What the harness sets up before load: the gateway, its config and key, the request.

Kept apart from the phase logic so each piece can be checked (and reused) on its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import sys
from pathlib import Path

import httpx
import msgspec

from gateway.bench import procs

PROMPT = (
    "Summarize in one sentence why a gateway between applications and language-model "
    "providers should add as little latency as possible, and name one thing it must "
    "measure to prove that claim. Be brief."
)

_CONFIG = """\
providers:
  - id: bench-upstream
    format: openai
    base_url: {base_url}
    api_key_env: BENCH_UPSTREAM_KEY
    regions: [local]
    data_policy: zdr
offers:
  - model: gpt-4o-mini
    provider: bench-upstream
    provider_model_id: bench-model
    price: {{input: 0.15, output: 0.60}}
    context_window: 128000
    max_output: 16384
    capabilities: [tools, json_object, json_schema]
"""


def write_config(directory: Path, upstream_base: str) -> Path:
    """The gateway config: the built-in catalog plus one provider, the bench upstream."""
    path = directory / "routegate-bench.yaml"
    path.write_text(_CONFIG.format(base_url=upstream_base))
    return path


def request_body(*, stream: bool, prompt: str = PROMPT) -> bytes:
    """The chat request every run sends (about 200 characters of prompt)."""
    body: dict[str, object] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return msgspec.json.encode(body)


_TOPICS = (
    "latency budgets", "connection pools", "token counting", "failover", "rate limits",
    "streaming relays", "usage metering", "circuit breakers", "request routing", "caches",
)  # fmt: skip


def request_bodies(*, stream: bool, prompts: int) -> list[bytes]:
    """``prompts`` requests that differ as real traffic does: each its own prompt (wording
    and length), so what a gateway caches per prompt sees ``prompts`` distinct ones. One:
    the fixed request of ``request_body``."""
    if prompts <= 1:
        return [request_body(stream=stream)]
    bodies = []
    for i in range(prompts):
        topics = ", ".join(_TOPICS[(i + k) % len(_TOPICS)] for k in range(1 + i % 7))
        prompt = f"{PROMPT} Request {i}: relate it to {topics} in {20 + (i * 37) % 180} words."
        bodies.append(request_body(stream=stream, prompt=prompt))
    return bodies


GOVERNED_LIMIT = 1_000_000_000


def create_live_key(
    base_url: str, admin_key: str, timeout: float = 10.0, *, governed: bool = False
) -> str:
    """Create a live key in the ``default`` workspace through the management API. With
    ``governed``, every request also reserves and settles: the key gets RPM and TPM limits and
    the workspace a budget, all too large to refuse anything."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
        resp = client.get("/v1/workspaces")
        if resp.status_code != 200:
            raise RuntimeError(f"GET /v1/workspaces: HTTP {resp.status_code}: {resp.text[:300]}")
        workspaces = resp.json()["data"]
        ws = next((w for w in workspaces if w.get("slug") == "default"), None)
        if ws is None:
            raise RuntimeError(f"no workspace with slug 'default' in {workspaces!r}")
        body: dict[str, object] = {"name": "bench", "mode": "live"}
        if governed:
            body |= {"rpm_limit": GOVERNED_LIMIT, "tpm_limit": GOVERNED_LIMIT}
            resp = client.post(
                f"/v1/workspaces/{ws['id']}/budgets",
                json={"scope_type": "workspace", "period": "monthly", "limit_usd": 1e9},
            )
            if resp.status_code != 201:
                raise RuntimeError(f"POST budgets: HTTP {resp.status_code}: {resp.text[:300]}")
        resp = client.post(f"/v1/workspaces/{ws['id']}/keys", json=body)
        if resp.status_code not in (200, 201):
            raise RuntimeError(f"POST keys: HTTP {resp.status_code}: {resp.text[:300]}")
        key: str = resp.json()["key"]
        return key


def start_gateway(
    upstream_base: str,
    tmp: Path,
    stack: contextlib.ExitStack,
    *,
    workers: int,
    governed: bool,
    ready_timeout: float,
    serve_args: list[str] | None = None,
    source: Path | None = None,
) -> tuple[str, str, int]:
    """Start ``python -m gateway serve`` on a free port (stopped when ``stack`` closes);
    returns (base URL, live key, PID). ``serve_args`` are added to ``serve``'s command line;
    ``source`` runs another checkout's ``python`` folder (to bench two builds side by side).
    ``tmp`` is this gateway's own folder (config, data, log)."""
    admin_key = "rg_live_" + secrets.token_hex(20)
    config = write_config(tmp, upstream_base)
    port = procs.free_port()
    env = procs.child_env(
        {
            "ROUTEGATE_DATA_DIR": str(tmp / "data"),
            "ROUTEGATE_ADMIN_KEY": admin_key,
            "BENCH_UPSTREAM_KEY": secrets.token_hex(16),
        },
        scrub=True,
    )
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
    (tmp / "data").mkdir()
    log_path = tmp / "gateway.log"
    log = stack.enter_context(log_path.open("wb"))
    serve = ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    serve += serve_args or []
    proc = procs.spawn(["-m", "gateway", *serve, "--workers", str(workers)], env, log)
    stack.callback(procs.stop, proc)
    base = f"http://127.0.0.1:{port}"
    procs.wait_ready(base + "/ready", proc, ready_timeout, log_path)
    try:
        key = create_live_key(base, admin_key, governed=governed)
    except (httpx.HTTPError, RuntimeError, KeyError) as exc:
        raise RuntimeError(f"creating a bench key failed: {exc}{procs.log_tail(log_path)}") from exc
    return base, key, proc.pid


def command_line(argv: list[str]) -> str:
    """How this run was invoked, for the report."""
    prog = sys.argv[0] if sys.argv else ""
    if prog.endswith("__main__.py"):
        head = ["python", "-m", "gateway.bench"]
    elif Path(prog).name == "routegate":
        head = ["routegate", "bench"]
    elif prog:
        head = ["python", os.path.relpath(prog)] if prog.endswith(".py") else [Path(prog).name]
    else:
        head = ["gateway.bench.main"]
    return shlex.join([*head, *argv])
