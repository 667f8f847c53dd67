"""API paths (``notebooks/churn.ipynb``) to OS paths, never leaving the server's root.

Resolution goes through the contents manager (its ``root_dir`` and its own API-to-OS mapping),
so the REST API sees exactly the files the file browser sees. On top of that, nb2prod refuses
what the contents manager would let through: ``..`` segments, absolute paths, hidden files and
symbolic links whose target lies outside the root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from tornado.web import HTTPError

from ..catalog import inside
from .errors import ApiError

Kind = Literal["file", "dir"]


class Root:
    """The server's root folder, as its contents manager defines it."""

    def __init__(self, contents_manager: Any) -> None:
        root_dir = getattr(contents_manager, "root_dir", None)
        if not root_dir or not hasattr(contents_manager, "_get_os_path"):
            raise ApiError(
                501,
                f"nb2prod needs a file-based contents manager; this server uses "
                f"{type(contents_manager).__name__}. Fix: run Jupyter with the default "
                "FileContentsManager (or a subclass of it).",
            )
        self.cm = contents_manager
        self.path = Path(os.path.realpath(root_dir))

    def relative(self, path: str | Path) -> str | None:
        """``path`` as a POSIX API path relative to the root, or None when it is outside."""
        if not inside(path, self.path):
            return None
        rel = os.path.relpath(os.path.realpath(path), self.path)
        return "" if rel == "." else Path(rel).as_posix()

    def resolve(self, api_path: object, field: str = "path", kind: Kind = "file") -> Path:
        """The OS path of ``api_path``, which must exist inside the root and not be hidden.

        Raises :class:`ApiError`: 400 for a missing or malformed value, 403 for a path that
        leaves the root or is hidden, 404 when nothing is there.
        """
        if not isinstance(api_path, str) or not api_path.strip():
            raise ApiError(400, f"`{field}` is missing. Fix: pass a path relative to the root.")
        if "\0" in api_path:
            raise ApiError(400, f"`{field}` contains a NUL character. Fix: pass a real path.")
        parts = api_path.replace("\\", "/").split("/")
        if api_path.startswith(("/", "\\")) or os.path.isabs(api_path):
            raise ApiError(
                403,
                f"`{field}` {api_path!r} is absolute. Fix: pass a path relative to the "
                "Jupyter server's root folder.",
            )
        if ".." in parts:
            raise ApiError(
                403, f"`{field}` {api_path!r} leaves the server's root folder. Fix: remove `..`."
            )
        allow_hidden = bool(getattr(self.cm, "allow_hidden", False))
        if not allow_hidden and any(p.startswith(".") and p != "." for p in parts):
            raise ApiError(
                403,
                f"`{field}` {api_path!r} is hidden. Fix: use a file the file browser shows "
                "(or start Jupyter with --ContentsManager.allow_hidden=True).",
            )
        try:
            os_path = str(self.cm._get_os_path(api_path))
        except HTTPError:  # the contents manager's own "outside root" or invalid path
            raise ApiError(
                403, f"`{field}` {api_path!r} is outside the server's root folder."
            ) from None
        if not inside(os_path, self.path):
            raise ApiError(
                403,
                f"`{field}` {api_path!r} points outside the server's root folder (through a "
                "symbolic link). Fix: copy the file into the root.",
            )
        if not allow_hidden and _hidden(os_path, self.path):
            raise ApiError(403, f"`{field}` {api_path!r} is hidden. Fix: use a visible file.")
        path = Path(os.path.realpath(os_path))
        if not path.exists():
            what = "folder" if kind == "dir" else "file"
            raise ApiError(404, f"`{field}` {api_path!r}: no such {what}. Fix: check the path.")
        if kind == "file" and not path.is_file():
            raise ApiError(400, f"`{field}` {api_path!r} is a folder, not a notebook.")
        if kind == "dir" and not path.is_dir():
            raise ApiError(400, f"`{field}` {api_path!r} is a file, not a folder.")
        return path


def _hidden(os_path: str, root: Path) -> bool:
    from jupyter_core.paths import is_hidden  # hidden by name or by the OS's hidden flag

    return bool(is_hidden(os_path, str(root)))
