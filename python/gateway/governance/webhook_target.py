"""Where a budget alert webhook may go, and a connection pinned to the address checked.

A workspace admin sets ``alert_webhook``; without a check the gateway would POST wherever
that name points, its own loopback and private network included. Unless
``defaults.webhooks.allow_private_targets`` is on, every address the host resolves to must be
globally routable (``ipaddress``'s ``is_global``, and not multicast): checked when the budget
is created or changed (a name that does not resolve yet is accepted) and again at every
delivery. The delivery then connects to the very address it checked, so a DNS answer that
changes between the check and the connect (rebinding) cannot redirect it (docs/governance.md,
"Alert webhooks").
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from urllib.parse import urlsplit


class RefusedTarget(Exception):
    """The webhook's host is (or resolves to) an address that is not globally routable."""


def addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in resolver order (an IP literal: itself)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check(host: str, found: list[str]) -> None:
    """Raise ``RefusedTarget`` unless every address in ``found`` is public."""
    private = [a for a in found if not is_public(a)]
    if private or not found:
        raise RefusedTarget(
            f"'{host}' resolves to {', '.join(private) or 'no address'}, which is not a "
            "public address"
        )


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def screen(url: str, allow_private: bool) -> None:
    """The create/update check: refuse a target that resolves to a non-public address."""
    if allow_private:
        return
    host, port = _host_port(url)
    try:
        found = addresses(host, port)
    except (OSError, UnicodeError):  # does not resolve now: checked again at delivery
        return
    check(host, found)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:  # TLS verified against the host name, not the address
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def post(
    url: str, body: bytes, headers: dict[str, str], allow_private: bool, timeout: float
) -> int:
    """POST ``body`` to ``url`` over a connection to an address checked just before; the
    answer's status. Raises ``RefusedTarget``, ``OSError`` or ``http.client`` errors."""
    parts = urlsplit(url)
    host, port = _host_port(url)
    found = addresses(host, port)
    if not allow_private:
        check(host, found)
    kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    connection = kind(host, port, found[0], timeout)
    try:
        target = parts.path or "/"
        connection.request(
            "POST", f"{target}?{parts.query}" if parts.query else target, body, headers
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
