"""A fleet of five OpenAI-format providers, each its own real upstream server, behind one gateway.

Every provider offers the same canonical model (``gpt-4o-mini``), two also offer ``gpt-4o``,
and the offers differ on purpose so that each routing option picks a different provider:

=========  ================  ===========  ============  ========  =======  ===============
provider   region            data policy  price in/out  TTFT ms   tok/s    notes
=========  ================  ===========  ============  ========  =======  ===============
alpha      us-east-1         none         0.10 / 0.40   1000      420      cheapest; small
                                                                           context/output
bravo      eu-west-1         no_training  0.70 / 2.80   120       170      lowest TTFT
charlie    eu-central-1      zdr          1.00 / 4.00   800       500      highest tok/s;
                                                                           only vision;
                                                                           alias ``cee``
delta      ap-southeast-1    zdr          0.25 / 1.00   450       260      ``balanced`` pick
echo       us-east-1         no_training  1.15 / 4.60   320       390      ``speed`` pick
=========  ================  ===========  ============  ========  =======  ===============

``gpt-4o`` (higher catalog quality) is on bravo (1.50/6.00, 150 ms, 160 tok/s) and charlie
(1.25/5.00, 850 ms, 470 tok/s). Every price keeps input:output at 1:4, so a request's expected
cost ranks offers exactly as their price does, whatever its token counts.

``spec_rank`` is the SPEC §3 scorer (min-max normalised features, preset weights, ties by
lower price): the expected winners in the tests are what it gives for this fleet, and
``test_routing_options.py`` checks that first, so a failure says whether the fleet or the
gateway changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from .gateway import GatewayProcess, gateway_config, new_secret
from .upstream import RecordedRequest, Reply, UpstreamServer

MINI = "gpt-4o-mini"
GPT4O = "gpt-4o"
MINI_ALIAS = "gpt-4o-mini-2024-07-18"  # the built-in catalog's alias of gpt-4o-mini

# SPEC §3 presets: (cost, ttft, throughput, reliability, quality).
PRESETS: dict[str, tuple[float, float, float, float, float]] = {
    "cheapest": (1.0, 0.0, 0.0, 0.0, 0.0),
    "cost": (0.7, 0.1, 0.05, 0.15, 0.0),
    "speed": (0.1, 0.45, 0.3, 0.15, 0.0),
    "ttft": (0.05, 0.8, 0.0, 0.15, 0.0),
    "throughput": (0.05, 0.1, 0.7, 0.15, 0.0),
    "balanced": (0.35, 0.25, 0.1, 0.2, 0.1),
    "best": (0.0, 0.05, 0.0, 0.15, 0.8),
}
# Built-in catalog quality for the "chat" task (what a "Say hello." prompt is).
CHAT_QUALITY: dict[str, float] = {MINI: 0.78, GPT4O: 0.86}

# Config policies (SPEC §9 ``policies:``).
CONFIG_POLICIES: dict[str, dict[str, Any]] = {
    "eu-only": {"regions": ["eu-*"]},
    "zdr-only": {"data_policy": "zdr"},
    "cheap": {"optimize": "cheapest"},
    "fast-first": {"optimize": "ttft"},
    "bulk": {"optimize": "throughput"},
}


@dataclass(frozen=True)
class FleetOffer:
    model: str
    price_in: float
    price_out: float
    ttft_ms: float
    throughput_tps: float
    context_window: int = 128000
    max_output: int = 16384
    capabilities: tuple[str, ...] = ("tools", "json_object", "json_schema")


@dataclass(frozen=True)
class FleetProvider:
    id: str
    region: str
    data_policy: str
    offers: tuple[FleetOffer, ...]
    aliases: tuple[str, ...] = ()

    @property
    def key_env(self) -> str:
        return f"FLEET_{self.id.upper()}_KEY"

    def upstream_model(self, model: str) -> str:
        """The ``provider_model_id`` the gateway must send this provider for ``model``."""
        return f"{self.id}-{model}"

    def offer(self, model: str) -> FleetOffer | None:
        return next((o for o in self.offers if o.model == model), None)


PROVIDERS: tuple[FleetProvider, ...] = (
    FleetProvider(
        "alpha",
        "us-east-1",
        "none",
        (FleetOffer(MINI, 0.10, 0.40, 1000, 420, context_window=4096, max_output=4096),),
    ),
    FleetProvider(
        "bravo",
        "eu-west-1",
        "no_training",
        (FleetOffer(MINI, 0.70, 2.80, 120, 170), FleetOffer(GPT4O, 1.50, 6.00, 150, 160)),
    ),
    FleetProvider(
        "charlie",
        "eu-central-1",
        "zdr",
        (
            FleetOffer(
                MINI,
                1.00,
                4.00,
                800,
                500,
                capabilities=("tools", "vision", "json_object", "json_schema"),
            ),
            FleetOffer(GPT4O, 1.25, 5.00, 850, 470),
        ),
        aliases=("cee",),
    ),
    FleetProvider("delta", "ap-southeast-1", "zdr", (FleetOffer(MINI, 0.25, 1.00, 450, 260),)),
    FleetProvider("echo", "us-east-1", "no_training", (FleetOffer(MINI, 1.15, 4.60, 320, 390),)),
)
BY_ID: dict[str, FleetProvider] = {p.id: p for p in PROVIDERS}
NAMES: tuple[str, ...] = tuple(p.id for p in PROVIDERS)
DATA_POLICY_LEVEL = {"none": 0, "no_training": 1, "zdr": 2}


def fleet_config(base_urls: Mapping[str, str]) -> dict[str, Any]:
    """The gateway YAML (as a dict) for the fleet, given each provider's upstream base URL."""
    providers = [
        {
            "id": p.id,
            "format": "openai",
            "base_url": base_urls[p.id],
            "api_key_env": p.key_env,
            "regions": [p.region],
            "data_policy": p.data_policy,
            "aliases": list(p.aliases),
            "timeout_s": {"first_byte": 2.0, "total": 4.0},
        }
        for p in PROVIDERS
    ]
    offers = [
        {
            "model": o.model,
            "provider": p.id,
            "provider_model_id": p.upstream_model(o.model),
            "price": {"input": o.price_in, "output": o.price_out},
            "context_window": o.context_window,
            "max_output": o.max_output,
            "capabilities": list(o.capabilities),
            "ttft_ms": o.ttft_ms,
            "throughput_tps": o.throughput_tps,
        }
        for p in PROVIDERS
        for o in p.offers
    ]
    config = gateway_config(providers, offers)
    config["policies"] = CONFIG_POLICIES
    # The expected winners follow the configured priors: loopback latencies learned from
    # traffic would rank the fleet by which upstream happened to be called most.
    config.setdefault("defaults", {})["health"] = {"learn_latency": False}
    return config


# --------------------------------------------------------------------- reference scorer


def _normalise(values: Sequence[float], lower_is_better: bool) -> list[float]:
    lo, hi = min(values), max(values)
    if hi <= lo:
        return [1.0] * len(values)
    return [(hi - v) / (hi - lo) if lower_is_better else (v - lo) / (hi - lo) for v in values]


def spec_rank(
    strategy: str,
    *,
    models: Sequence[str] = (MINI,),
    providers: Sequence[str] = NAMES,
    prompt_tokens: int = 10,
    output_tokens: int = 512,
) -> list[tuple[str, str, float]]:
    """``(provider, model, score)`` best first, by the SPEC §3 presets over the given offers."""
    rows = [
        (p.id, o) for p in PROVIDERS if p.id in providers for o in p.offers if o.model in models
    ]
    cost = [prompt_tokens * o.price_in + output_tokens * o.price_out for _, o in rows]
    features = [
        _normalise(cost, True),
        _normalise([o.ttft_ms for _, o in rows], True),
        _normalise([o.throughput_tps for _, o in rows], False),
        [1.0] * len(rows),  # no traffic yet: every success rate is the same prior
        _normalise([CHAT_QUALITY[o.model] for _, o in rows], False),
    ]
    weights = PRESETS[strategy]
    if strategy == "cheapest":
        scores = features[0]
    else:
        scores = [
            sum(w * f[i] for w, f in zip(weights, features, strict=True)) for i in range(len(rows))
        ]
    order = sorted(
        range(len(rows)),
        key=lambda i: (-scores[i], (rows[i][1].price_in + rows[i][1].price_out) / 2, i),
    )
    return [(rows[i][0], rows[i][1].model, round(scores[i], 4)) for i in order]


def spec_winner(strategy: str, **kwargs: Any) -> str:
    return spec_rank(strategy, **kwargs)[0][0]


# --------------------------------------------------------------------- running the fleet


@dataclass
class Served:
    """One successful routed chat completion and who served it."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str]  # httpx-style, case-insensitive
    received: dict[str, list[RecordedRequest]] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.body.get("routing_metadata")
        assert isinstance(meta, dict), f"no routing_metadata: {self.body}"
        return meta

    @property
    def provider(self) -> str:
        return str(self.meta.get("provider"))

    @property
    def model(self) -> str:
        return str(self.meta.get("model_canonical"))

    @property
    def strategy(self) -> str:
        return str(self.meta.get("routing_strategy"))

    @property
    def upstreams_hit(self) -> list[str]:
        """Providers whose upstream received a chat request for this call, in fleet order."""
        return [name for name in NAMES if self.received.get(name)]

    def summary(self) -> str:
        meta = self.body.get("routing_metadata") or {}
        keys = ("provider", "model_canonical", "routing_strategy", "policy")
        brief = {k: meta.get(k) for k in keys}
        brief["viable"] = meta.get("candidates_viable")
        brief["warnings"] = meta.get("warnings")
        brief["fallback_chain"] = meta.get("fallback_chain")
        return f"served {brief}; upstreams hit {self.upstreams_hit}"


class Fleet:
    """Five upstream servers and one gateway in front of them (see the module docstring)."""

    def __init__(self, data_dir: Path, admin_key: str, name: str = "gw-fleet") -> None:
        self.admin_key = admin_key
        self.secrets = {p.id: new_secret(f"sk-fleet-{p.id}-") for p in PROVIDERS}
        self.upstreams = {p.id: UpstreamServer(f"fleet-{p.id}") for p in PROVIDERS}
        self.gateway = GatewayProcess(
            data_dir,
            config=fleet_config({n: u.base_url for n, u in self.upstreams.items()}),
            env={BY_ID[n].key_env: s for n, s in self.secrets.items()},
            admin_key=admin_key,
            name=name,
        )
        self.live_key = ""

    def start(self) -> Fleet:
        for up in self.upstreams.values():
            up.start()
        self.reset()
        self.gateway.start()
        self.live_key = str(self.gateway.create_key("fleet-live", mode="live")["key"])
        return self

    def stop(self) -> None:
        self.gateway.stop()
        for up in self.upstreams.values():
            with contextlib.suppress(Exception):
                up.stop()

    def reset(self) -> None:
        """Empty request logs; each upstream answers with a text naming its provider."""
        for name, up in self.upstreams.items():
            up.reset()
            up.set_default(Reply(text=reply_text(name)))

    # --- requests -------------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        return {n: len(u.chat_requests()) for n, u in self.upstreams.items()}

    def _received_since(self, before: dict[str, int]) -> dict[str, list[RecordedRequest]]:
        return {n: u.chat_requests()[before[n] :] for n, u in self.upstreams.items()}

    def post(
        self,
        body: dict[str, Any],
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[httpx.Response, dict[str, list[RecordedRequest]]]:
        """POST /v1/chat/completions with httpx; returns the response and what each upstream got."""
        before = self._counts()
        with self.gateway.http(key or self.live_key, timeout=30) as http:
            resp = http.post("/v1/chat/completions", json=body, headers=headers or {})
        return resp, self._received_since(before)

    def route(
        self,
        model: str | None = MINI,
        *,
        routing: dict[str, Any] | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        content: Any = "Say hello.",
        **extra: Any,
    ) -> Served:
        """One chat completion that must succeed; checks that the reported provider is the one
        whose upstream answered, with its own key and its own upstream model id."""
        body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], **extra}
        if model is not None:
            body["model"] = model
        if routing is not None:
            body["routing"] = routing
        resp, received = self.post(body, key=key, headers=headers)
        assert resp.status_code == 200, f"expected 200, got {resp.status_code} {resp.text[:600]}"
        served = Served(resp.status_code, resp.json(), resp.headers, received)
        self.check_consistent(served)
        return served

    def route_sdk(
        self,
        model: str = MINI,
        *,
        routing: dict[str, Any] | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        **extra_body: Any,
    ) -> Served:
        """The same through the official ``openai`` SDK (gateway fields via ``extra_body``)."""
        before = self._counts()
        body_extra = dict(extra_body)
        if routing is not None:
            body_extra["routing"] = routing
        client = self.client(key)
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": "Say hello."}],
            extra_body=body_extra or None,
            extra_headers=headers,
        )
        completion = raw.parse()
        body = completion.model_dump()
        assert completion.model_extra is not None
        body["routing_metadata"] = completion.model_extra.get("routing_metadata")
        served = Served(raw.status_code, body, raw.headers, self._received_since(before))
        self.check_consistent(served)
        return served

    def client(self, key: str | None = None) -> openai.OpenAI:
        return self.gateway.openai(key or self.live_key, timeout=30)

    def check_consistent(self, served: Served) -> None:
        """Metadata, headers and the upstreams' own logs agree on who served."""
        meta = served.meta
        provider = meta.get("provider")
        assert provider in BY_ID, f"unexpected provider {provider!r}; {served.summary()}"
        assert served.headers.get("x-provider-used") == provider, (
            f"X-Provider-Used {served.headers.get('x-provider-used')!r} != {provider!r}"
        )
        assert served.headers.get("x-routing-strategy") == meta.get("routing_strategy"), (
            f"X-Routing-Strategy {served.headers.get('x-routing-strategy')!r} != "
            f"{meta.get('routing_strategy')!r}"
        )
        got = served.received.get(provider) or []
        assert got, f"{provider}'s upstream received no request; {served.summary()}"
        last = got[-1]
        p = BY_ID[provider]
        assert last.header("authorization") == f"Bearer {self.secrets[provider]}"
        assert last.json["model"] == p.upstream_model(str(meta.get("model_canonical")))
        assert meta.get("provider_model_id") == last.json["model"]
        assert meta.get("region") == p.region, f"region {meta.get('region')!r} != {p.region!r}"
        assert meta.get("key_source") == "platform"
        for gateway_field in ("routing", "models", "gateway_metadata", "extensions"):
            assert gateway_field not in last.json, f"{gateway_field!r} was forwarded upstream"
        text = served.body["choices"][0]["message"]["content"]
        assert text == reply_text(provider), f"answer {text!r} is not {provider}'s"
        if not meta.get("fallback_chain"):
            assert served.upstreams_hit == [provider], (
                f"without fallback only {provider} should be hit; {served.summary()}"
            )

    # --- management -----------------------------------------------------------------
    def admin_http(self) -> httpx.Client:
        return self.gateway.http(self.admin_key)

    def workspace_id(self) -> str:
        return self.gateway.default_workspace_id()


def reply_text(provider: str) -> str:
    return f"answer from {provider}"


@contextlib.contextmanager
def running_fleet(data_dir: Path, admin_key: str, name: str) -> Iterator[Fleet]:
    fleet = Fleet(data_dir, admin_key, name)
    try:
        yield fleet.start()
    finally:
        fleet.stop()
