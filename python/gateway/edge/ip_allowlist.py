"""A key's IP allow-list (SPEC §7): entries are addresses or CIDR networks, IPv4 or IPv6.

Parsing is strict at key creation (a typo must not silently lock a key out or let everyone
in) and canonical, so the listing shows what is enforced: ``10.0.0.7/24`` is stored as
``10.0.0.0/24``, ``2001:DB8::1`` as ``2001:db8::1``. An IPv4-mapped IPv6 client address
(``::ffff:10.0.0.7``, what a dual-stack socket reports) is matched as its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def canonical_entry(entry: str) -> str:
    """The stored form of one entry; ``ValueError`` with a readable message if it is neither
    an IP address nor a CIDR network."""
    text = entry.strip()
    if "%" in text:  # a zone id only means something on the machine that wrote it
        raise ValueError(f"'{entry}' has an IPv6 zone id; give the address without it")
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"'{entry}' is not an IP address or CIDR network") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@lru_cache(maxsize=4096)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Parsed once per distinct allow-list; records are frozen, so the tuple is a fine key.
    An entry that does not parse (written before validation existed) matches nothing."""
    parsed: list[Network] = []
    for entry in entries:
        try:
            parsed.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return tuple(parsed)


def client_address(ip: str | None) -> Address | None:
    """The client's address as the allow-list sees it; None when absent or unparsable."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def allowed(entries: Iterable[str], ip: str | None) -> bool:
    """True when ``ip`` falls in one of ``entries`` (stored, canonical). An unknown client
    address is never allowed: the check fails closed."""
    address = client_address(ip)
    if address is None:
        return False
    return any(
        address.version == network.version and address in network
        for network in _networks(tuple(entries))
    )
