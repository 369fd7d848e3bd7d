"""Key IP allow-lists: canonical entries, CIDR membership, and the 403 ``ip_not_allowed``."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.api.key_options import ip_allowlist
from gateway.edge.auth import check_ip
from gateway.edge.ip_allowlist import allowed, canonical_entry, client_address
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.store.records import ApiKey

V4 = st.ip_addresses(v=4)
V6 = st.ip_addresses(v=6)
ADDRESSES = V4 | V6


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address = draw(ADDRESSES)
    prefix = draw(st.integers(min_value=0, max_value=address.max_prefixlen))
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


@given(ADDRESSES, networks())
def test_membership_matches_the_ipaddress_module(address, network):
    entry = canonical_entry(f"{network.network_address}/{network.prefixlen}")
    expected = address.version == network.version and address in network
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # a dual-stack socket's view of an IPv4 client
        expected = network.version == 4 and mapped in network
    assert allowed((entry,), str(address)) is expected


@given(ADDRESSES)
def test_an_address_entry_allows_exactly_that_address(address):
    entry = canonical_entry(str(address))
    assert allowed((entry,), str(address))
    other = address + 1 if int(address) < (2**address.max_prefixlen - 1) else address - 1
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is None or getattr(other, "ipv4_mapped", None) != mapped:
        assert not allowed((entry,), str(other))


@given(networks(), st.integers(min_value=0, max_value=2**32))
def test_canonical_entries_are_fixed_points(network, offset):
    host = network.network_address + (offset % network.num_addresses)
    text = f"{host}/{network.prefixlen}"
    once = canonical_entry(text)
    assert canonical_entry(once) == once
    assert ipaddress.ip_network(once) == network


@given(st.text(max_size=30))
def test_garbage_is_refused_with_a_readable_message(text):
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        with pytest.raises(ValueError, match=r"IP address or CIDR|zone id"):
            canonical_entry(text)


@given(st.one_of(st.none(), st.just(""), st.just("unix-socket"), st.just("not:an:ip::x")))
def test_an_unknown_client_address_is_never_allowed(ip):
    assert client_address(ip) is None
    assert not allowed(("0.0.0.0/0", "::/0"), ip)


def test_ipv4_mapped_clients_match_ipv4_entries():
    assert allowed(("10.0.0.0/8",), "::ffff:10.1.2.3")
    assert canonical_entry("::ffff:10.1.2.3") == "10.1.2.3"
    assert not allowed(("10.0.0.0/8",), "::ffff:11.1.2.3")


def test_validation_names_ip_allowlist_and_canonicalises():
    assert ip_allowlist(None) is None
    assert ip_allowlist(["10.0.0.7/24", " 10.0.0.0/24 ", "2001:DB8::1"]) == (
        "10.0.0.0/24",
        "2001:db8::1",
    )
    for bad in (["10.0.0.300"], [], ["fe80::1%eth0"], ["10.0.0.0/33"]):
        with pytest.raises(InvalidRequest) as caught:
            ip_allowlist(bad)
        assert caught.value.param == "ip_allowlist"


def _key(entries: tuple[str, ...] | None) -> ApiKey:
    return ApiKey(
        id="key_x",
        workspace_id="ws",
        key_hash="0" * 64,
        prefix="rg_live_abcd…",
        name="k",
        mode="live",
        scopes=("inference",),
        created_at="2026-01-01T00:00:00.000Z",
        ip_allowlist=entries,
    )


def test_check_ip_is_403_ip_not_allowed_and_silent_without_a_list():
    check_ip(_key(None), None)
    check_ip(_key(("127.0.0.0/8",)), "127.0.0.2")
    with pytest.raises(PermissionDenied) as caught:
        check_ip(_key(("127.0.0.1",)), "127.0.0.2")
    assert caught.value.status == 403 and caught.value.code == "ip_not_allowed"
    with pytest.raises(PermissionDenied):
        check_ip(_key(("127.0.0.1",)), None)
