"""The HTTP API: ``janus serve`` runs :func:`create_app` with uvicorn.

    from janus_stack.api import create_app, ServerOptions

Layout: ``app`` (the application and its lifespan), ``state`` (what a
server process owns), ``guard`` (the thread boundary and the context lock),
``auth`` and ``keys`` (API keys, roles, tenants, rate limits), ``errors``
(every failure as a JSON problem body), ``metrics`` (Prometheus),
``uploads`` and ``streaming`` (multipart in, server-sent events out), and
``routes/`` (one module per resource).

FastAPI is imported only when the app is asked for, so ``janus keys`` (which
needs only :mod:`janus_stack.api.keys`) starts as fast as any command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from janus_stack.api.keys import KeyRecord, KeyStore, Permission, Role

if TYPE_CHECKING:
    from janus_stack.api.app import create_app
    from janus_stack.api.state import ServerOptions

__all__ = ["KeyRecord", "KeyStore", "Permission", "Role", "ServerOptions", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from janus_stack.api.app import create_app  # noqa: PLC0415

        return create_app
    if name == "ServerOptions":
        from janus_stack.api.state import ServerOptions  # noqa: PLC0415

        return ServerOptions
    raise AttributeError(f"module 'janus_stack.api' has no attribute {name!r}")
