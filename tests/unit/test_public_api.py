"""The public scorer API is exactly what ``gateway.routing.__all__`` says it is."""

from __future__ import annotations

import doctest
import types

import gateway.routing
import gateway.routing.decision
import gateway.routing.table


def test_every_exported_name_exists_and_nothing_public_is_missing() -> None:
    exported = set(gateway.routing.__all__)
    assert all(hasattr(gateway.routing, name) for name in exported)
    public = {
        name
        for name, value in vars(gateway.routing).items()
        if not name.startswith("_")
        and not (  # the package's own submodules are not part of the API
            isinstance(value, types.ModuleType) and value.__name__ == f"gateway.routing.{name}"
        )
    }
    assert public == exported


def test_docstring_examples_run() -> None:
    for module in (gateway.routing, gateway.routing.table):
        failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert tried > 0 and failures == 0, module.__name__
