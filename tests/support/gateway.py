"""Launch the real gateway as a separate process on loopback and talk to it.

``GatewayProcess`` writes the YAML config, starts ``python -m gateway serve`` with a
temporary data directory and a scrubbed environment, waits for ``GET /ready``, collects
stdout and stderr to files, and stops the process by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

from .upstream import free_port

READY_TIMEOUT_S = float(os.environ.get("ROUTEGATE_TEST_READY_TIMEOUT", "45"))
REPO_ROOT = Path(__file__).resolve().parents[2]
# Command that runs the gateway CLI; override to test an installed build.
GATEWAY_CMD = os.environ.get("ROUTEGATE_TEST_GATEWAY_CMD", f"{sys.executable} -m gateway")
# The server interface every gateway under test is served with (``serve --interface``); unset:
# the default.
INTERFACE = os.environ.get("ROUTEGATE_TEST_INTERFACE")

# Provider credentials the gateway could pick up from the environment; always removed so
# that only the upstreams a test configures are candidates.
_SCRUB_EXACT = {
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
    "TOGETHER_AI_API_KEY",
    "FIREWORKS_API_KEY",
    "FIREWORKS_AI_API_KEY",
    "OPENROUTER_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "COHERE_API_KEY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
}

ADMIN_KEY_RE = re.compile(r"admin key:\s+(rg_live_\S+)")
TEST_KEY_RE = re.compile(r"test key:\s+(rg_test_\S+)")


class GatewayStartError(RuntimeError):
    pass


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _SCRUB_EXACT and not k.startswith("ROUTEGATE_") and not k.endswith("_API_KEY")
    }
    # The source tree's package (a maturin develop build puts the native core there too).
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT / "python"), env.get("PYTHONPATH", "")) if p
    )
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env["no_proxy"] = "127.0.0.1,localhost"
    if extra:
        env.update(extra)
    return env


def openai_provider(
    provider_id: str,
    base_url: str,
    key_env: str,
    *,
    regions: list[str] | None = None,
    data_policy: str = "no_training",
    first_byte_s: float = 1.5,
    total_s: float = 3.0,
) -> dict[str, Any]:
    return {
        "id": provider_id,
        "format": "openai",
        "base_url": base_url,
        "api_key_env": key_env,
        "regions": regions or ["us-east-1"],
        "data_policy": data_policy,
        "timeout_s": {"first_byte": first_byte_s, "total": total_s},
    }


def offer(
    model: str,
    provider: str,
    provider_model_id: str,
    *,
    price_in: float = 2.5,
    price_out: float = 10.0,
    context_window: int = 128000,
    max_output: int = 16384,
    capabilities: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "model": model,
        "provider": provider,
        "provider_model_id": provider_model_id,
        "price": {"input": price_in, "output": price_out},
        "context_window": context_window,
        "max_output": max_output,
        "capabilities": (
            capabilities if capabilities is not None else ["tools", "json_object", "json_schema"]
        ),
    }


class GatewayProcess:
    """One gateway process. ``config=None`` starts it with no config at all (quick start)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        admin_key: str | None = None,
        workers: int = 1,
        name: str = "gateway",
        interface: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.interface = interface or INTERFACE
        self.config = config
        self.extra_env = dict(env or {})
        self.admin_key = admin_key
        self.workers = workers
        self.name = name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_dir = data_dir / "logs"
        self.config_path = data_dir / "routegate.yaml"
        self._stdout_path: Path | None = None
        self._stderr_path: Path | None = None
        self._all_logs: list[Path] = []

    # --- lifecycle --------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def command(self) -> list[str]:
        cmd = [*shlex.split(GATEWAY_CMD), "serve"]
        if self.config is not None:
            cmd += ["--config", str(self.config_path)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers != 1:
            cmd += ["--workers", str(self.workers)]
        if self.interface:
            cmd += ["--interface", self.interface]
        return cmd

    def start(self, timeout: float = READY_TIMEOUT_S) -> GatewayProcess:
        assert self.proc is None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.config is not None:
            self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.port = free_port()
        self.starts += 1
        env = scrubbed_env({"ROUTEGATE_DATA_DIR": str(self.data_dir / "store")})
        if self.admin_key is not None:
            env["ROUTEGATE_ADMIN_KEY"] = self.admin_key
        env.update(self.extra_env)
        self._stdout_path = self.log_dir / f"{self.name}-{self.starts}.stdout.log"
        self._stderr_path = self.log_dir / f"{self.name}-{self.starts}.stderr.log"
        self._all_logs += [self._stdout_path, self._stderr_path]
        with self._stdout_path.open("wb") as out, self._stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.command(),
                env=env,
                cwd=str(self.data_dir),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                code = self.proc.poll()
                if code is not None:
                    self.proc = None
                    raise GatewayStartError(
                        f"{self.name} exited with code {code} before ready\n{self.log_tail()}"
                    )
                try:
                    resp = http.get(self.url("/ready"))
                    if resp.status_code == 200:
                        return
                    last = f"/ready -> {resp.status_code} {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"/ready -> {type(exc).__name__}"
                time.sleep(0.1)
        self.stop()
        raise GatewayStartError(
            f"{self.name} not ready after {timeout}s ({last})\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # The process group is the one this launcher created for this gateway.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # Leftover worker processes of this gateway's own group, if any.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def restart(self) -> GatewayProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- logs -------------------------------------------------------------------------
    def stdout_text(self) -> str:
        return self._stdout_path.read_text(errors="replace") if self._stdout_path else ""

    def stderr_text(self) -> str:
        return self._stderr_path.read_text(errors="replace") if self._stderr_path else ""

    def log_text(self) -> str:
        """Everything every start of this gateway wrote to stdout and stderr."""
        return "\n".join(p.read_text(errors="replace") for p in self._all_logs if p.exists())

    def log_tail(self, lines: int = 40) -> str:
        tail = (self.stdout_text() + "\n" + self.stderr_text()).strip().splitlines()[-lines:]
        return f"--- {self.name} log tail ---\n" + "\n".join(tail)

    def wait_for_stdout(self, pattern: re.Pattern[str], timeout: float = 10.0) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(self.stdout_text())
            if match:
                return match.group(1)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def assert_no_secrets(self, *secret_values: str) -> None:
        text = self.log_text()
        for value in secret_values:
            assert value, "empty secret given"
            assert value not in text, (
                f"secret {value[:10]}… appears in {self.name}'s logs:\n"
                + "\n".join(line for line in text.splitlines() if value in line)[:2000]
            )

    # --- clients ----------------------------------------------------------------------
    def http(self, key: str | None = None, timeout: float = 20.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, trust_env=False
        )

    def openai(self, key: str, timeout: float = 20.0) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url + "/v1", api_key=key, max_retries=0, timeout=timeout
        )

    # --- management helpers -----------------------------------------------------------
    def _admin(self) -> str:
        assert self.admin_key, "no admin key known for this gateway"
        return self.admin_key

    def workspaces(self) -> list[dict[str, Any]]:
        with self.http(self._admin()) as http:
            resp = http.get("/v1/workspaces")
        assert resp.status_code == 200, f"GET /v1/workspaces -> {resp.status_code} {resp.text}"
        data = resp.json()["data"]
        assert isinstance(data, list)
        return data

    def default_workspace_id(self) -> str:
        for ws in self.workspaces():
            if ws.get("slug") == "default":
                return str(ws["id"])
        raise AssertionError("no workspace with slug 'default'")

    def create_key(
        self,
        name: str,
        *,
        mode: str = "live",
        scopes: list[str] | None = None,
        allowed_models: list[str] | None = None,
        workspace_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "mode": mode, **extra}
        if scopes is not None:
            body["scopes"] = scopes
        if allowed_models is not None:
            body["allowed_models"] = allowed_models
        ws = workspace_id or self.default_workspace_id()
        with self.http(self._admin()) as http:
            resp = http.post(f"/v1/workspaces/{ws}/keys", json=body)
        assert resp.status_code == 201, f"create key -> {resp.status_code} {resp.text}"
        created = resp.json()
        assert isinstance(created, dict)
        return created


def gateway_config(
    providers: list[dict[str, Any]],
    offers: list[dict[str, Any]],
    **defaults: Any,
) -> dict[str, Any]:
    config: dict[str, Any] = {"providers": providers, "offers": offers}
    if defaults:
        config["defaults"] = defaults
    return config
