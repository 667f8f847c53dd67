"""nb2prod's jupyter_server extension: the REST API under ``<base_url>/nb2prod/``.

The handlers (:mod:`.handlers`) are thin: they parse the request, check it is authenticated and
authorized, and call the core modules (:mod:`.paths`, :mod:`.notebooks`, :mod:`.runs`,
:mod:`.compile`), which know nothing of HTTP requests. Nothing heavy is imported until a request
needs it, so loading the extension costs the server nothing. Routes and bodies: docs/rest-api.md.
"""

from __future__ import annotations

from typing import Any


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Called by jupyter_server when the ``nb2prod`` extension is enabled."""
    from .handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("nb2prod: REST API at %snb2prod/", server_app.base_url)


# The name jupyter_server used before 2.0; some tools still look for it.
load_jupyter_server_extension = _load_jupyter_server_extension
