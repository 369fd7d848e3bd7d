"""Request validation: every msgspec failure becomes a 400 naming the exact ``param``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.edge.schemas import ChatRequest, convert, decode_object
from gateway.errors import InvalidRequest, MissingParameter

MESSAGE = {"role": "user", "content": "hi"}
NUMERIC_RANGES = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}


@given(st.sampled_from(sorted(NUMERIC_RANGES)), st.floats(allow_nan=False, allow_infinity=False))
def test_numeric_fields_accept_exactly_their_range(field: str, value: float) -> None:
    low, high = NUMERIC_RANGES[field]
    body = {"messages": [MESSAGE], field: value}
    if low <= value <= high:
        assert getattr(convert(body, ChatRequest), field) == value
    else:
        with pytest.raises(InvalidRequest) as caught:
            convert(body, ChatRequest)
        assert caught.value.param == field
        assert caught.value.status == 400


@given(st.integers(0, 5), st.sampled_from(["role", "content"]))
def test_nested_errors_name_the_nested_param(index: int, field: str) -> None:
    messages: list[dict[str, object]] = [dict(MESSAGE) for _ in range(index + 1)]
    if field == "role":
        del messages[index]["role"]
        expected_error: type[InvalidRequest] = MissingParameter
    else:
        messages[index]["content"] = 42
        expected_error = InvalidRequest
    with pytest.raises(expected_error) as caught:
        convert({"messages": messages}, ChatRequest)
    assert caught.value.param == f"messages[{index}].{field}"


def test_missing_messages_is_missing_required_parameter() -> None:
    with pytest.raises(MissingParameter) as caught:
        convert({"model": "auto"}, ChatRequest)
    assert (caught.value.param, caught.value.code) == ("messages", "missing_required_parameter")


def test_routing_errors_are_prefixed_with_routing() -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert({"messages": [MESSAGE], "routing": {"weights": {"cost": -1}}}, ChatRequest)
    assert caught.value.param == "routing.weights.cost"


@given(st.binary(max_size=64))
def test_decode_object_accepts_only_json_objects(raw: bytes) -> None:
    try:
        value = decode_object(raw)
    except InvalidRequest as error:
        assert error.status == 400
    else:
        assert isinstance(value, dict)


def test_unknown_top_level_fields_are_kept_for_forwarding() -> None:
    assert decode_object(b'{"messages": [], "vendor_knob": 3}')["vendor_knob"] == 3
