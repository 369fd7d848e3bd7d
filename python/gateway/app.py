"""The ASGI entry point for servers other than granian: ``gateway.app:create_app`` (an app
factory). The app itself lives at the HTTP edge, ``gateway.edge.app``."""

from gateway.edge.app import App, create_app

__all__ = ["App", "create_app"]
