"""The usage record's ``fallback_chain`` text: the shared first-try entry and its cached text
are exactly what encoding the chain gives, for any chain."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.providers.dispatch import Attempt, _attempt, chain_text, first_try_success
from gateway.routing.catalog import Catalog

DEPLOYMENTS = Catalog(load_config(None), environ={}).deployments
REASONS = st.sampled_from([None, "timeout", "server_error", "content_filter", "rate_limited"])


def test_a_first_try_success_is_one_shared_value_per_deployment() -> None:
    for deployment in DEPLOYMENTS[:50]:
        shared = first_try_success(deployment)
        assert shared is first_try_success(deployment)
        assert shared == Attempt(
            deployment.provider.id, deployment.model.id, "success", None, deployment.key_source
        )
        assert _attempt(deployment, None, retry=False) is shared


@given(
    st.lists(st.tuples(st.integers(0, len(DEPLOYMENTS) - 1), REASONS, st.booleans()), max_size=4)
)
def test_chain_text_is_the_chain_encoded(entries: list[tuple[int, str | None, bool]]) -> None:
    chain = [_attempt(DEPLOYMENTS[row], reason, retry=retry) for row, reason, retry in entries]
    expected = msgspec.json.encode(chain).decode() if chain else None
    assert chain_text(chain) == expected
    if chain:  # an equal value that is not the shared one is encoded, not looked up
        copy = [
            Attempt(a.provider, a.model, a.status, a.reason, a.key_source, a.retry) for a in chain
        ]
        assert chain_text(copy) == expected
