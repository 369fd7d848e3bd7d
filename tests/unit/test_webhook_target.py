"""Properties of the webhook target check (``gateway.governance.webhook_target``)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.governance.webhook_target import RefusedTarget, check, is_public

NON_GLOBAL_V4 = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
]


@given(st.sampled_from(NON_GLOBAL_V4), st.integers(0, 2**32 - 1))
def test_private_ranges_are_never_public(network: str, offset: int) -> None:
    net = ipaddress.IPv4Network(network)
    address = net[offset % net.num_addresses]
    assert not is_public(str(address))
    assert not is_public(f"::ffff:{address}")  # the IPv4-mapped form reads the same


@given(st.ip_addresses(v=4))
def test_a_mapped_address_reads_as_its_ipv4(address: ipaddress.IPv4Address) -> None:
    assert is_public(f"::ffff:{address}") == is_public(str(address))


@given(st.lists(st.ip_addresses().map(str), min_size=1, max_size=5))
def test_check_refuses_when_any_address_is_not_public(found: list[str]) -> None:
    if all(is_public(a) for a in found):
        check("host", found)
    else:
        with pytest.raises(RefusedTarget):
            check("host", found)


def test_no_address_is_refused() -> None:
    with pytest.raises(RefusedTarget):
        check("host", [])
