"""Precedence of routing settings (SPEC §2), highest first: request ``routing`` → model suffix →
``X-Routing-Policy`` → key default policy → workspace routing defaults → built-in defaults.

Each level is shown overriding the one below it by the served provider changing (the fleet of
``support.fleet`` gives every strategy its own winner: cheapest/cost → alpha, ttft → bravo,
throughput → charlie, balanced → delta, speed → echo). The workspace-level tests come last:
they need ``PATCH /v1/workspaces/{id}/routing-defaults`` and the workspace policy endpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.checks import assert_error
from support.fleet import (
    MINI,
    Fleet,
    Served,
    running_fleet,
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, admin_key: str) -> Iterator[Fleet]:
    with running_fleet(tmp_path_factory.mktemp("gw-fleet-prec"), admin_key, "gw-fleet-prec") as f:
        yield f
        f.gateway.assert_no_secrets(admin_key, f.live_key, *f.secrets.values())
        assert "Traceback" not in f.gateway.log_text(), f.gateway.log_tail(80)


@pytest.fixture(autouse=True)
def _fresh(fleet: Fleet) -> None:
    fleet.reset()


@pytest.fixture(scope="module")
def fast_key(fleet: Fleet) -> str:
    """A live key whose default policy is the config policy ``fast-first`` (optimize ttft)."""
    return str(fleet.gateway.create_key("prec-fast", default_policy="fast-first")["key"])


@pytest.fixture(scope="module")
def eu_key(fleet: Fleet) -> str:
    """A live key whose default policy is ``eu-only`` (regions eu-*)."""
    return str(fleet.gateway.create_key("prec-eu", default_policy="eu-only")["key"])


def _served_by(served: Served, provider: str, *, policy: object = ..., strategy: str = "") -> None:
    assert served.provider == provider, f"expected {provider}; {served.summary()}"
    if strategy:
        assert served.strategy == strategy, f"expected strategy {strategy!r}; {served.summary()}"
    if policy is not ...:
        got = served.meta.get("policy")
        assert got == policy, f"expected policy {policy!r}, got {got!r}; {served.summary()}"


def _policy(name: str) -> dict[str, str]:
    return {"X-Routing-Policy": name}


# ------------------------------------------------------------------ without workspace settings


def test_builtin_default_is_balanced(fleet: Fleet) -> None:
    _served_by(fleet.route(MINI), "delta", policy=None, strategy="balanced")


@pytest.mark.parametrize(
    ("name", "provider", "strategy"),
    [
        ("bulk", "charlie", "throughput"),
        ("cheap", "alpha", "cheapest"),
        ("eu-only", "bravo", "balanced"),
        ("zdr-only", "delta", "balanced"),
    ],
)
def test_x_routing_policy_overrides_the_builtin_default(
    fleet: Fleet, name: str, provider: str, strategy: str
) -> None:
    served = fleet.route(MINI, headers=_policy(name))
    _served_by(served, provider, policy=name, strategy=strategy)


def test_x_routing_policy_through_the_openai_sdk(fleet: Fleet) -> None:
    served = fleet.route_sdk(MINI, headers=_policy("bulk"))
    _served_by(served, "charlie", policy="bulk", strategy="throughput")


def test_key_default_policy_overrides_the_builtin_default(fleet: Fleet, fast_key: str) -> None:
    served = fleet.route(MINI, key=fast_key)
    _served_by(served, "bravo", policy="fast-first", strategy="ttft")


def test_x_routing_policy_overrides_the_key_default_policy(fleet: Fleet, fast_key: str) -> None:
    served = fleet.route(MINI, key=fast_key, headers=_policy("cheap"))
    _served_by(served, "alpha", policy="cheap", strategy="cheapest")


def test_layers_merge_field_by_field(fleet: Fleet, eu_key: str) -> None:
    # Key default eu-only (regions) + header cheap (optimize): the cheapest EU offer.
    served = fleet.route(MINI, key=eu_key, headers=_policy("cheap"))
    _served_by(served, "bravo", strategy="cheapest")
    assert served.meta["region"].startswith("eu-")


def test_model_suffix_overrides_x_routing_policy(fleet: Fleet) -> None:
    served = fleet.route(f"{MINI}:nitro", headers=_policy("cheap"))
    _served_by(served, "echo", strategy="speed")


def test_model_suffix_keeps_the_policy_s_other_fields(fleet: Fleet) -> None:
    served = fleet.route(f"{MINI}:floor", headers=_policy("eu-only"))
    _served_by(served, "bravo", policy="eu-only", strategy="cheapest")


def test_model_suffix_overrides_the_key_default_policy(fleet: Fleet, fast_key: str) -> None:
    served = fleet.route(f"{MINI}:floor", key=fast_key)
    _served_by(served, "alpha", strategy="cheapest")


def test_request_routing_overrides_the_model_suffix(fleet: Fleet) -> None:
    served = fleet.route(f"{MINI}:nitro", routing={"optimize": "throughput"})
    _served_by(served, "charlie", strategy="throughput")


def test_request_routing_overrides_x_routing_policy(fleet: Fleet) -> None:
    served = fleet.route(MINI, headers=_policy("cheap"), routing={"optimize": "ttft"})
    _served_by(served, "bravo", policy="cheap", strategy="ttft")


def test_request_routing_overrides_a_policy_field_it_sets(fleet: Fleet) -> None:
    served = fleet.route(
        MINI, headers=_policy("eu-only"), routing={"regions": ["us-*"], "optimize": "ttft"}
    )
    _served_by(served, "echo", strategy="ttft")  # us-*: alpha and echo


def test_request_weights_override_a_suffix(fleet: Fleet) -> None:
    served = fleet.route(f"{MINI}:floor", routing={"weights": {"throughput": 1}})
    _served_by(served, "charlie", strategy="custom")


def test_unknown_x_routing_policy_is_400_even_with_a_key_default(
    fleet: Fleet, fast_key: str
) -> None:
    resp, received = fleet.post(
        {"model": MINI, "messages": [{"role": "user", "content": "hi"}]},
        key=fast_key,
        headers=_policy("does-not-exist"),
    )
    assert_error(resp, 400, "invalid_request", param="X-Routing-Policy")
    assert not any(received.values())


def test_key_with_an_unknown_default_policy_is_refused_at_creation(fleet: Fleet) -> None:
    with fleet.admin_http() as http:
        resp = http.post(
            f"/v1/workspaces/{fleet.workspace_id()}/keys",
            json={"name": "bad-default", "default_policy": "no-such-policy"},
        )
    assert_error(resp, 400, "invalid_request", param="default_policy")


# ------------------------------------------------------------------ workspace settings (last)


@pytest.fixture(scope="module")
def workspace_api(fleet: Fleet) -> str:
    """The default workspace id, with its routing defaults cleared (``PATCH {}``)."""
    workspace_id = fleet.workspace_id()
    with fleet.admin_http() as http:
        resp = http.patch(f"/v1/workspaces/{workspace_id}/routing-defaults", json={})
    assert resp.status_code == 200, resp.text
    return workspace_id


WorkspaceDefaults = Callable[..., dict[str, Any]]


@pytest.fixture
def ws_defaults(fleet: Fleet, workspace_api: str) -> Iterator[WorkspaceDefaults]:
    """``ws_defaults(**fields)`` PATCHes the workspace routing defaults; cleared afterwards."""
    path = f"/v1/workspaces/{workspace_api}/routing-defaults"

    def patch(**fields: Any) -> dict[str, Any]:
        with fleet.admin_http() as http:
            resp = http.patch(path, json=fields)
        assert resp.status_code == 200, f"PATCH {path} -> {resp.status_code} {resp.text}"
        body = resp.json()
        assert isinstance(body, dict)
        return body

    patch()
    yield patch
    patch()


@pytest.fixture
def ws_policy(fleet: Fleet, workspace_api: str) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """``ws_policy(name, options)`` PUTs a workspace policy; deleted afterwards."""
    created: list[str] = []

    def put(name: str, options: dict[str, Any]) -> None:
        with fleet.admin_http() as http:
            resp = http.put(f"/v1/workspaces/{workspace_api}/policies/{name}", json=options)
        assert resp.status_code in (200, 201), (
            f"PUT policy {name} -> {resp.status_code} {resp.text}"
        )
        created.append(name)

    yield put
    with fleet.admin_http() as http:
        for name in created:
            http.delete(f"/v1/workspaces/{workspace_api}/policies/{name}")


def test_workspace_defaults_override_the_builtin_default(
    fleet: Fleet, ws_defaults: WorkspaceDefaults
) -> None:
    _served_by(fleet.route(MINI), "delta", strategy="balanced")
    ws_defaults(optimize="throughput")
    _served_by(fleet.route(MINI), "charlie", strategy="throughput")
    ws_defaults(optimize=None)
    _served_by(fleet.route(MINI), "delta", strategy="balanced")


def test_key_default_policy_overrides_workspace_defaults(
    fleet: Fleet, ws_defaults: WorkspaceDefaults, fast_key: str
) -> None:
    ws_defaults(optimize="throughput")
    _served_by(fleet.route(MINI), "charlie")
    _served_by(fleet.route(MINI, key=fast_key), "bravo", policy="fast-first", strategy="ttft")


def test_request_routing_overrides_workspace_defaults(
    fleet: Fleet, ws_defaults: WorkspaceDefaults
) -> None:
    ws_defaults(optimize="throughput", regions=["eu-*"])
    _served_by(fleet.route(MINI), "charlie")
    # optimize from the request, regions still from the workspace: the cheapest EU offer.
    _served_by(fleet.route(MINI, routing={"optimize": "cheapest"}), "bravo", strategy="cheapest")


def test_every_level_overrides_the_one_below(
    fleet: Fleet, ws_defaults: WorkspaceDefaults, fast_key: str
) -> None:
    """One ladder: remove the top level one step at a time and watch the provider change."""
    ws_defaults(optimize="throughput")
    steps: list[tuple[str, Served, str]] = [
        (
            "request routing",
            fleet.route(
                f"{MINI}:nitro",
                key=fast_key,
                headers=_policy("cheap"),
                routing={"optimize": "balanced"},
            ),
            "delta",
        ),
        (
            "model suffix",
            fleet.route(f"{MINI}:nitro", key=fast_key, headers=_policy("cheap")),
            "echo",
        ),
        ("X-Routing-Policy", fleet.route(MINI, key=fast_key, headers=_policy("cheap")), "alpha"),
        ("key default policy", fleet.route(MINI, key=fast_key), "bravo"),
        ("workspace defaults", fleet.route(MINI), "charlie"),
    ]
    ws_defaults(optimize=None)
    steps.append(("built-in defaults", fleet.route(MINI), "delta"))
    got = [(level, served.provider) for level, served, _ in steps]
    assert got == [(level, provider) for level, _, provider in steps], got
    policies = [served.meta.get("policy") for _, served, _ in steps]
    assert policies[2:] == ["cheap", "fast-first", None, None], policies


def test_workspace_policy_via_x_routing_policy(
    fleet: Fleet, ws_policy: Callable[[str, dict[str, Any]], None]
) -> None:
    ws_policy("ws-bulk", {"optimize": "throughput", "exclude_providers": ["charlie"]})
    served = fleet.route(MINI, headers=_policy("ws-bulk"))
    _served_by(served, "alpha", policy="ws-bulk", strategy="throughput")  # 420 tok/s, next best


def test_workspace_policy_shadows_the_config_policy_of_the_same_name(
    fleet: Fleet, ws_policy: Callable[[str, dict[str, Any]], None]
) -> None:
    _served_by(fleet.route(MINI, headers=_policy("cheap")), "alpha", policy="cheap")
    ws_policy("cheap", {"optimize": "ttft"})
    _served_by(fleet.route(MINI, headers=_policy("cheap")), "bravo", policy="cheap")
    with fleet.admin_http() as http:
        resp = http.delete(f"/v1/workspaces/{fleet.workspace_id()}/policies/cheap")
    assert resp.status_code == 200, resp.text
    _served_by(fleet.route(MINI, headers=_policy("cheap")), "alpha", policy="cheap")


def test_deleted_workspace_policy_is_an_unknown_policy(
    fleet: Fleet, ws_policy: Callable[[str, dict[str, Any]], None]
) -> None:
    ws_policy("ws-temp", {"optimize": "ttft"})
    _served_by(fleet.route(MINI, headers=_policy("ws-temp")), "bravo", policy="ws-temp")
    with fleet.admin_http() as http:
        resp = http.delete(f"/v1/workspaces/{fleet.workspace_id()}/policies/ws-temp")
    assert resp.status_code == 200, resp.text
    resp, _ = fleet.post(
        {"model": MINI, "messages": [{"role": "user", "content": "hi"}]},
        headers=_policy("ws-temp"),
    )
    assert_error(resp, 400, "invalid_request", param="X-Routing-Policy")


# --- data_policy: the workspace default is a floor ("the stricter of request and workspace wins")


@pytest.mark.parametrize("weaker", ["none", "no_training"])
def test_request_cannot_weaken_the_workspace_data_policy(
    fleet: Fleet, ws_defaults: WorkspaceDefaults, weaker: str
) -> None:
    _served_by(fleet.route(MINI, routing={"optimize": "cheapest"}), "alpha")
    ws_defaults(data_policy="zdr")
    served = fleet.route(MINI, routing={"optimize": "cheapest", "data_policy": weaker})
    _served_by(served, "delta")  # the cheapest zdr offer, not alpha (none) or bravo (no_training)
    assert served.meta.get("candidates_viable") == 2, served.summary()


def test_stricter_request_data_policy_beats_the_workspace_default(
    fleet: Fleet, ws_defaults: WorkspaceDefaults
) -> None:
    ws_defaults(data_policy="no_training")
    _served_by(fleet.route(MINI, routing={"optimize": "ttft"}), "bravo")
    _served_by(fleet.route(MINI, routing={"optimize": "ttft", "data_policy": "zdr"}), "delta")


def test_workspace_data_policy_floor_beats_policies_and_suffixes(
    fleet: Fleet, ws_defaults: WorkspaceDefaults
) -> None:
    ws_defaults(data_policy="zdr")
    _served_by(fleet.route(f"{MINI}:floor", headers=_policy("eu-only")), "charlie")


def test_pin_to_a_provider_below_the_workspace_floor_is_409(
    fleet: Fleet, ws_defaults: WorkspaceDefaults
) -> None:
    ws_defaults(data_policy="zdr")
    resp, received = fleet.post(
        {
            "model": f"alpha/{MINI}",
            "messages": [{"role": "user", "content": "hi"}],
            "routing": {"data_policy": "none"},
        }
    )
    err = assert_error(resp, 409, "policy_conflict")
    assert "data_policy" in err["message"], err["message"]
    assert not any(received.values())
