"""The one error type of the REST API: a status code and a one-paragraph message."""

from __future__ import annotations

from typing import Any

from tornado.web import HTTPError


class ApiError(HTTPError):
    """Answered as ``{"message": ..., **extra}`` with ``status`` (see handlers.write_error)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        # log_message is %-formatted by tornado only when args are given; none are.
        super().__init__(status, log_message=message)
        self.message = message
        self.extra = extra
