"""The floor: granian and Routegate's upstream client with no gateway logic in between.

An RSGI app that reads the body, forwards it to ``$FLOOR_UPSTREAM/chat/completions`` with the
lean HTTP/1.1 client (``gateway.providers.http1``) and returns the upstream's answer as is.
Benched as a peer, it shows what the server interface and the client cost on their own, so
the rest of Routegate's figure is its own per-request work (docs/decisions.md):

    routegate bench --rates 500 --concurrency 32 --peer-name floor \\
        --peer-cmd 'env FLOOR_UPSTREAM={upstream} granian --interface rsgi --port {port}
                    --workers 1 --loop uvloop --no-ws gateway.bench.floor:app'
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from gateway.providers.http1 import Pool

_HEADERS = b"content-type: application/json\r\nauthorization: Bearer floor\r\n"


class FloorApp:
    """Forwards every request to one upstream; nothing else."""

    def __init__(self) -> None:
        self._url = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:9/v1") + "/chat/completions"
        self._pool: Pool | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = None  # made inside the serving loop, on the first request

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pool is not None:
            self._pool.close()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        body: bytes = await protocol()
        if self._pool is None:
            self._pool = Pool()
        pool = self._pool
        target = pool.target(self._url)
        head = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n" % (
            target.path,
            target.host_header,
            len(body),
        )
        conn = await pool.acquire(target, 5.0)
        conn.send(head + _HEADERS + b"\r\n" + body, 30.0)
        response = await conn.head()
        answer = await conn.read_all()
        pool.release(conn)
        protocol.response_bytes(
            response.status,
            [("content-type", response.headers.get("content-type", "application/json"))],
            answer,
        )


app = FloorApp()
