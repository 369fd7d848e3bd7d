"""Management request bodies: decode, refuse unknown fields by name, validate, and read the
query's ``days`` window.

msgspec's unknown-field error carries no path, so ``schemas.convert`` cannot name the field;
management bodies are small and flat, so the check is done here first and the 400 says which
field it was (SPEC §6: ``param`` names the bad field).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import msgspec

from gateway.edge.schemas import convert
from gateway.errors import InvalidRequest

T = TypeVar("T", bound=msgspec.Struct)

DEFAULT_DAYS = 30
MAX_DAYS = 366


def convert_body(data: Mapping[str, object], kind: type[T]) -> T:
    """``data`` as ``kind``; 400 naming the first unknown or invalid field."""
    known = {field.encode_name for field in msgspec.structs.fields(kind)}
    for name in data:
        if name not in known:
            raise InvalidRequest(f"Unknown parameter '{name}'.", param=name)
    return convert(dict(data), kind)


def days_param(query: Mapping[str, str], default: int = DEFAULT_DAYS) -> int:
    """``?days=N``: whole days, 1 to ``MAX_DAYS``; 400 naming ``days`` otherwise."""
    raw = query.get("days")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_DAYS:
        raise InvalidRequest(
            f"Invalid 'days' {raw!r}: use a whole number from 1 to {MAX_DAYS}.", param="days"
        )
    return int(raw)
