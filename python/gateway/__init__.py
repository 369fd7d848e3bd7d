"""Routegate: a self-hosted, OpenAI-compatible LLM gateway with a native routing core."""

from gateway._router_core import __version__

__all__ = ["__version__"]
