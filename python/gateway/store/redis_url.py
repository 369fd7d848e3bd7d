"""Redis store URLs: one server (``redis://``, ``rediss://``) or a Redis Cluster.

A cluster URL is ``redis+cluster://[user:password@]host:port[,host:port…]`` (or
``rediss+cluster://`` for TLS): any one reachable node is enough, the client reads the
cluster's layout from it. A cluster has only database 0, so the only path allowed is
``/`` or ``/0`` (README, "Redis Cluster"). One-server URLs are parsed by redis-py itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisUrl:
    cluster: bool
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    tls: bool = False


def _node(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(DEFAULT_PORT)
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a cluster node must be host:port, got {text!r}")
    return host, int(port)


def parse_redis_url(url: str) -> RedisUrl:
    """The URL's kind and, for a cluster, its seed nodes and credentials.
    ``ValueError`` names what is wrong without repeating the URL (it may hold a password)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("a redis store URL needs a scheme")
    if scheme not in CLUSTER_SCHEMES:
        return RedisUrl(cluster=False)
    rest, _, query = rest.partition("?")
    if query:
        raise ValueError("a cluster URL takes no query parameters")
    userinfo, at, hosts = rest.rpartition("@")
    hosts, _, path = hosts.partition("/")
    if path not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_node(part) for part in hosts.split(",") if part)
    if not nodes:
        raise ValueError("a cluster URL names at least one host:port")
    return RedisUrl(
        cluster=True,
        nodes=nodes,
        username=username,
        password=password,
        tls=CLUSTER_SCHEMES[scheme],
    )
