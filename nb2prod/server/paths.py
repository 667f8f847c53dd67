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

__all__ = ["MAX_NAME_BYTES", "MAX_PATH_BYTES", "Root", "inside", "relative_to"]

Kind = Literal["file", "dir"]
MAX_PATH_BYTES = 1024  # an API path, below the root; the OS's own limit is 4096 with the root
MAX_NAME_BYTES = 255  # one file or folder name, as on every common file system


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
        return relative_to(path, self.path)

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
        _check_length(api_path, parts, field)
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
                "(or set ContentsManager.allow_hidden = True in the server's configuration).",
            )
        try:
            return self._resolve_os(api_path, field, kind, allow_hidden)
        except OSError as exc:  # the OS refuses the name itself (ELOOP, EACCES, ...): not a 500
            status = 403 if isinstance(exc, PermissionError) else 400
            raise ApiError(
                status,
                f"`{field}` {_shown(api_path)} cannot be used ({exc.strerror or exc}). "
                "Fix: pass a path the file browser shows.",
            ) from None

    def _resolve_os(self, api_path: str, field: str, kind: Kind, allow_hidden: bool) -> Path:
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


def relative_to(path: str | Path, root: Path) -> str | None:
    """``path`` as a POSIX API path relative to ``root`` (a real path), or None outside it."""
    if not inside(path, root):
        return None
    rel = os.path.relpath(os.path.realpath(path), root)
    return "" if rel == "." else Path(rel).as_posix()


def _shown(api_path: str) -> str:
    return repr(api_path if len(api_path) <= 80 else api_path[:79] + "…")


def _check_length(api_path: str, parts: list[str], field: str) -> None:
    """Refuse names the OS would refuse (ENAMETOOLONG) and text it cannot encode, as 400s."""
    try:
        size = len(api_path.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate from JSON's \ud800
        raise ApiError(
            400, f"`{field}` is not valid Unicode text. Fix: pass a real path."
        ) from None
    longest = max(len(p.encode("utf-8")) for p in parts)
    if size > MAX_PATH_BYTES or longest > MAX_NAME_BYTES:
        raise ApiError(
            400,
            f"`{field}` is too long ({len(api_path)} characters; nb2prod takes paths of at most "
            f"{MAX_PATH_BYTES} bytes, each file or folder name at most {MAX_NAME_BYTES}). "
            "Fix: pass a shorter path.",
        )


def _hidden(os_path: str, root: Path) -> bool:
    from jupyter_core.paths import is_hidden  # hidden by name or by the OS's hidden flag

    return bool(is_hidden(os_path, str(root)))
