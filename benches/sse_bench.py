"""SSE parse + extraction micro-benchmark: the native relays against a pure-Python parser.

Usage (from the repository root, after ``maturin develop --release``)::

    python benches/sse_bench.py                 # writes benches/results/sse-latest.{json,md}
    python benches/sse_bench.py --streams 100 --rounds 2 --no-write

Two workloads of realistic generated streams (default 1,000 streams x 200 events each),
fed in the same network-sized reads (64 B to 1 KiB, cut anywhere) to every implementation:

* ``openai``    - upstream OpenAI ``chat.completion.chunk`` streams (text, some with tool
  calls, the finish chunk, the usage chunk, ``[DONE]``) through ``OpenAIStreamRelay``;
* ``anthropic`` - upstream Anthropic Messages streams (``message_start``, pings, text /
  thinking / tool_use blocks, ``message_delta`` with usage, ``message_stop``) through
  ``AnthropicStreamRelay``.

The reference for each is a straightforward pure-Python parser doing the same work: buffer
the reads, split lines, ``json.loads`` per event, extract delta text length, tool-call
fragments, finish reason and usage, build the client chunk (model rewritten, or translated
from Anthropic) and ``json.dumps`` it. Before timing, every stream's outputs and extracted
figures are checked equal between native and reference. Implementations are timed
interleaved, round after round, in the same process; the median round is reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import _router_core as core

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGET_SPEEDUP = 20.0

WORDS = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "or",
    "from",
    "at",
    "which",
    "have",
    "an",
    "not",
    "they",
    "but",
    "all",
    "were",
    "can",
    "has",
    "more",
    "one",
    "will",
    "would",
    "there",
    "their",
    "we",
    "what",
    "so",
    "about",
    "if",
    "out",
    "function",
    "return",
    "value",
    "error",
    "result",
    "data",
    "model",
    "token",
    "stream",
    "ünïcödé",
    "数据",
    "🙂",
)


def words(rng: random.Random, lo: int, hi: int) -> str:
    return " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def arguments(rng: random.Random) -> str:
    args = {f"arg_{i}": words(rng, 1, 6).strip() for i in range(rng.randint(1, 4))}
    args["limit"] = rng.randint(1, 100)  # type: ignore[assignment]
    return json.dumps(args)


def fragments(rng: random.Random, text: str, count: int) -> list[str]:
    cuts = sorted(rng.randint(0, len(text)) for _ in range(count - 1))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


# ---------------------------------------------------------------- stream generators


def openai_stream(rng: random.Random, events: int, index: int) -> bytes:
    head = {
        "id": f"chatcmpl-{index:08d}AbCdEfGhIjKlMnOpQrStUv",
        "object": "chat.completion.chunk",
        "created": 1_763_700_000 + index,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + json.dumps({**head, "choices": [choice]}).encode() + b"\n\n"

    parts = [chunk({"role": "assistant", "content": "", "refusal": None})]
    body = events - 4
    tools = rng.random() < 0.2
    text_events = body // 2 if tools else body
    parts.extend(chunk({"content": words(rng, 1, 3)}) for _ in range(text_events))
    if tools:
        calls = rng.randint(1, 2)
        per_call = (body - text_events) // calls
        for i in range(calls):
            args = fragments(rng, arguments(rng) * 3, per_call)
            call = {
                "index": i,
                "id": f"call_{index:06d}{i}xYz",
                "type": "function",
                "function": {"name": "lookup_records", "arguments": args[0]},
            }
            parts.append(chunk({"tool_calls": [call]}))
            parts.extend(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": a}}]})
                for a in args[1:]
            )
    parts.append(chunk({}, "tool_calls" if tools else "stop"))
    usage = {
        "prompt_tokens": rng.randint(10, 5000),
        "completion_tokens": events,
        "total_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    parts.append(b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def anthropic_stream(rng: random.Random, events: int, index: int) -> bytes:
    def event(name: str, body: dict[str, Any]) -> bytes:
        data = json.dumps({"type": name, **body}, separators=(",", ":"))
        return f"event: {name}\ndata: {data}\n\n".encode()

    usage = {
        "input_tokens": rng.randint(10, 5000),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": rng.choice((0, 0, 1024)),
        "output_tokens": 1,
        "service_tier": "standard",
    }
    message = {
        "id": f"msg_01{index:08d}XyZaBcDeFgHiJkLmN",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    parts = [event("message_start", {"message": message}), event("ping", {})]
    budget = events - 5
    block = 0
    if rng.random() < 0.25:  # extended thinking first
        n = budget // 4
        parts.append(
            event(
                "content_block_start",
                {"index": block, "content_block": {"type": "thinking", "thinking": ""}},
            )
        )
        for _ in range(n):
            delta = {"type": "thinking_delta", "thinking": words(rng, 1, 3)}
            parts.append(event("content_block_delta", {"index": block, "delta": delta}))
        sig = {"type": "signature_delta", "signature": "EqQBCgIYAhIM" + "x" * 60}
        parts.append(event("content_block_delta", {"index": block, "delta": sig}))
        parts.append(event("content_block_stop", {"index": block}))
        budget -= n + 3
        block += 1
    tools = rng.random() < 0.2
    text_events = budget // 2 if tools else budget - 2
    parts.append(
        event(
            "content_block_start", {"index": block, "content_block": {"type": "text", "text": ""}}
        )
    )
    for _ in range(text_events):
        delta = {"type": "text_delta", "text": words(rng, 1, 3)}
        parts.append(event("content_block_delta", {"index": block, "delta": delta}))
    parts.append(event("content_block_stop", {"index": block}))
    if tools:
        block += 1
        tool = {"type": "tool_use", "id": f"toolu_01{index:08d}AbC", "name": "lookup_records"}
        parts.append(
            event("content_block_start", {"index": block, "content_block": {**tool, "input": {}}})
        )
        for a in fragments(rng, arguments(rng) * 3, max(1, budget - text_events - 4)):
            delta = {"type": "input_json_delta", "partial_json": a}
            parts.append(event("content_block_delta", {"index": block, "delta": delta}))
        parts.append(event("content_block_stop", {"index": block}))
    stop = "tool_use" if tools else "end_turn"
    parts.append(
        event(
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": events},
            },
        )
    )
    parts.append(event("message_stop", {}))
    return b"".join(parts)


def reads_of(rng: random.Random, data: bytes) -> list[bytes]:
    """Network-sized reads (64 B to 1 KiB), cut anywhere."""
    out = []
    pos = 0
    while pos < len(data):
        size = rng.randint(64, 1024)
        out.append(data[pos : pos + size])
        pos += size
    return out


# ---------------------------------------------------------------- pure-Python references


class PyRelayBase:
    """Buffer reads, split events on blank lines and lines on ``\\n``, ``json.loads`` each."""

    def __init__(self) -> None:
        self.buffer = b""
        self.done = False
        self.error: str | None = None
        self.usage: tuple[int, int, int, int] | None = None
        self.chunks = 0
        self.content_chars = 0
        self.finish_reason: str | None = None
        self.malformed = 0

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        *complete, self.buffer = self.buffer.replace(b"\r\n", b"\n").split(b"\n\n")
        out = []
        for raw in complete:
            name = None
            lines = []
            for line in raw.decode("utf-8", "replace").split("\n"):
                if line.startswith("data:"):
                    lines.append(line[5:].removeprefix(" "))
                elif line.startswith("event:"):
                    name = line[6:].strip()
            if lines:
                self.event(name, "\n".join(lines), out)
        return b"".join(out)

    def finish(self) -> bytes:
        rest, self.buffer = self.buffer, b""
        return self.feed(rest + b"\n\n") if rest.strip() else b""

    def event(self, name: str | None, data: str, out: list[bytes]) -> None:
        raise NotImplementedError

    def emit(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        self.chunks += 1
        out.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")


class PyOpenAIRelay(PyRelayBase):
    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model

    def event(self, name: str | None, data: str, out: list[bytes]) -> None:
        if data.strip() == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            self.malformed += 1
            return
        if not isinstance(chunk, dict):
            self.malformed += 1
            return
        if name == "error" or "error" in chunk:
            self.error = self.error or json.dumps(chunk)
            return
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = (
                usage.get("prompt_tokens", 0),
                usage.get("completion_tokens", 0),
                (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
                (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
            )
            if chunk.get("choices") == []:
                return
        for choice in chunk.get("choices") or []:
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta") or {}
            for key in ("content", "refusal", "reasoning_content"):
                if isinstance(delta.get(key), str):
                    self.content_chars += len(delta[key])
            for call in delta.get("tool_calls") or []:
                self.content_chars += len((call.get("function") or {}).get("arguments") or "")
        chunk["model"] = self.model
        self.emit(chunk, out)


STOP_TO_FINISH = {"max_tokens": "length", "tool_use": "tool_calls", "refusal": "content_filter"}


class PyAnthropicRelay(PyRelayBase):
    def __init__(self, model: str, chunk_id: str, created: int) -> None:
        super().__init__()
        self.head = {"id": chunk_id, "object": "chat.completion.chunk", "created": created}
        self.model = model
        self.role_sent = False
        self.tools: dict[int, int] = {}
        self.seen: dict[str, int] = {}

    def chunk(self, delta: dict[str, Any], out: list[bytes], finish: str | None = None) -> None:
        if not self.role_sent:
            self.role_sent = True
            self.chunk({"role": "assistant", "content": ""}, out)
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        self.emit({**self.head, "model": self.model, "choices": [choice]}, out)

    def set_usage(self, usage: dict[str, int]) -> None:
        self.seen.update({k: v for k, v in usage.items() if isinstance(v, int)})
        cached = self.seen.get("cache_read_input_tokens", 0)
        prompt = self.seen.get("input_tokens", 0) + cached
        prompt += self.seen.get("cache_creation_input_tokens", 0)
        self.usage = (prompt, self.seen.get("output_tokens", 0), cached, 0)

    def text(self, key: str, value: str, out: list[bytes]) -> None:
        if value:
            self.content_chars += len(value)
            self.chunk({key: value}, out)

    def event(self, name: str | None, data: str, out: list[bytes]) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            self.malformed += 1
            return
        kind = event.get("type", name)
        if kind == "message_start":
            self.set_usage(event["message"].get("usage") or {})
            if not self.role_sent:
                self.role_sent = True
                self.chunk({"role": "assistant", "content": ""}, out)
        elif kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "text":
                self.text("content", block.get("text", ""), out)
            elif block["type"] == "thinking":
                self.text("reasoning_content", block.get("thinking", ""), out)
            elif block["type"] == "tool_use":
                tool = self.tools[event["index"]] = len(self.tools)
                call = {
                    "index": tool,
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": ""},
                }
                self.chunk({"tool_calls": [call]}, out)
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                self.text("content", delta["text"], out)
            elif delta["type"] == "thinking_delta":
                self.text("reasoning_content", delta["thinking"], out)
            elif delta["type"] == "input_json_delta" and delta["partial_json"]:
                self.content_chars += len(delta["partial_json"])
                call = {
                    "index": self.tools[event["index"]],
                    "function": {"arguments": delta["partial_json"]},
                }
                self.chunk({"tool_calls": [call]}, out)
        elif kind == "message_delta":
            self.set_usage(event.get("usage") or {})
            stop = (event.get("delta") or {}).get("stop_reason")
            if stop:
                self.finish_reason = STOP_TO_FINISH.get(stop, "stop")
                self.chunk({}, out, self.finish_reason)
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            self.error = self.error or data


# ---------------------------------------------------------------- running and checking

Factory = Callable[[int], Any]


def factories(workload: str) -> dict[str, Factory]:
    if workload == "openai":
        return {
            "native": lambda i: core.OpenAIStreamRelay(model="served-model"),
            "python": lambda i: PyOpenAIRelay("served-model"),
        }
    return {
        "native": lambda i: core.AnthropicStreamRelay(
            model="served-model", chunk_id=f"chatcmpl-{i}", created=1_763_700_000
        ),
        "python": lambda i: PyAnthropicRelay("served-model", f"chatcmpl-{i}", 1_763_700_000),
    }


def run_all(factory: Factory, streams: list[list[bytes]]) -> float:
    """Relay every stream; returns the seconds it took."""
    gc.collect()
    start = time.perf_counter()
    for i, reads in enumerate(streams):
        relay = factory(i)
        for read in reads:
            relay.feed(read)
        relay.finish()
    return time.perf_counter() - start


def figures(relay: Any) -> tuple[object, ...]:
    return (
        relay.done,
        relay.error,
        relay.usage,
        relay.chunks,
        relay.content_chars,
        relay.finish_reason,
        relay.malformed,
    )


def verify(workload: str, streams: list[list[bytes]]) -> int:
    """Native and reference agree on every stream: same chunks (as JSON) and figures."""
    native, python = factories(workload).values()
    for i, reads in enumerate(streams):
        a, b = native(i), python(i)
        out_a = b"".join(a.feed(r) for r in reads) + a.finish()
        out_b = b"".join(b.feed(r) for r in reads) + b.finish()
        chunks_a = [json.loads(e[6:]) for e in out_a.split(b"\n\n") if e]
        chunks_b = [json.loads(e[6:]) for e in out_b.split(b"\n\n") if e]
        if chunks_a != chunks_b or figures(a) != figures(b):
            raise SystemExit(f"{workload} stream {i}: native and reference disagree")
    return len(streams)


@dataclass
class Workload:
    name: str
    streams: list[list[bytes]]
    bytes: int
    events: int


def build(name: str, count: int, events: int, seed: int) -> Workload:
    rng = random.Random(f"{name}-{seed}")
    make = openai_stream if name == "openai" else anthropic_stream
    wires = [make(rng, events, i) for i in range(count)]
    streams = [reads_of(rng, w) for w in wires]
    total_events = sum(w.count(b"\n\n") for w in wires)
    return Workload(name, streams, sum(len(w) for w in wires), total_events)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# SSE parse + extraction benchmark",
        "",
        f"- Command: `{report['command']}`",
        f"- Date: {report['date']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['platform']}, Python {m['python']}, "
        f"load average at start {m['loadavg']}",
        f"- Workload: {report['streams']} streams x {report['events_per_stream']} events per "
        f"format, fed in 64 B - 1 KiB reads; {report['rounds']} interleaved rounds, median shown",
        "",
        "| workload | MB | events | native MB/s | Python MB/s | native us/event "
        "| Python us/event | **speed-up** |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in report["workloads"]:
        lines.append(
            f"| {w['name']} | {w['mb']:.1f} | {w['events']:,} | {w['native_mb_s']:.0f} "
            f"| {w['python_mb_s']:.1f} | {w['native_us_per_event']:.2f} "
            f"| {w['python_us_per_event']:.2f} | **{w['speedup']:.1f}x** |"
        )
    lines += [
        "",
        f"Target: at least {TARGET_SPEEDUP:.0f}x the pure-Python parser. "
        + "; ".join(
            f"{w['name']}: {'met' if w['speedup'] >= TARGET_SPEEDUP else 'NOT met'}"
            for w in report["workloads"]
        )
        + ".",
        "",
        "- `openai`: `OpenAIStreamRelay` (parse, check the chunk shape, splice `model`, meter, "
        "keep the completion text) against `PyOpenAIRelay`.",
        "- `anthropic`: `AnthropicStreamRelay` (parse, translate to OpenAI chunks, meter) "
        "against `PyAnthropicRelay`.",
        "- Outputs (as JSON) and extracted figures were checked equal on every stream first.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200, help="events per stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {
        "command": " ".join(["python benches/sse_bench.py", *(argv or sys.argv[1:])]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "streams": args.streams,
        "events_per_stream": args.events,
        "rounds": args.rounds,
        "workloads": [],
    }
    workloads = [build(n, args.streams, args.events, args.seed) for n in ("openai", "anthropic")]
    for w in workloads:
        checked = verify(w.name, w.streams)
        print(f"{w.name}: {w.bytes / 1e6:.1f} MB, {w.events:,} events, {checked} streams verified")
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        for w in workloads:
            impls = list(factories(w.name).items())
            if r % 2:
                impls.reverse()
            for impl, factory in impls:
                times.setdefault((w.name, impl), []).append(run_all(factory, w.streams))
        print(f"round {r + 1}/{args.rounds} done")
    for w in workloads:
        native = statistics.median(times[w.name, "native"])
        python = statistics.median(times[w.name, "python"])
        row = {
            "name": w.name,
            "mb": w.bytes / 1e6,
            "events": w.events,
            "native_s": times[w.name, "native"],
            "python_s": times[w.name, "python"],
            "native_mb_s": w.bytes / 1e6 / native,
            "python_mb_s": w.bytes / 1e6 / python,
            "native_us_per_event": native / w.events * 1e6,
            "python_us_per_event": python / w.events * 1e6,
            "speedup": python / native,
        }
        report["workloads"].append(row)
        print(
            f"{w.name:9s} native {row['native_mb_s']:7.1f} MB/s  python {row['python_mb_s']:6.1f}"
            f" MB/s  speed-up {row['speedup']:5.1f}x"
        )
    report["target_met"] = all(w["speedup"] >= TARGET_SPEEDUP for w in report["workloads"])
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "sse-latest.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "sse-latest.md").write_text(markdown(report))
        print(f"wrote {os.path.relpath(RESULTS / 'sse-latest.json')} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
