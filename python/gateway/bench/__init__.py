"""Routegate's load-benchmark harness: the gateway's own overhead under load.

``main`` runs the whole harness (``routegate bench``, ``python -m gateway.bench``);
``gateway.bench.upstream`` is the fast stand-in provider, ``gateway.bench.loadgen`` the
open-loop load generator with its lean HTTP/1.1 client.
"""

from gateway.bench.harness import main

__all__ = ["main"]
