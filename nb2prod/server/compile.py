"""``POST /nb2prod/compile``: an exported version compiled for an engine, under the server's root.

The same work as ``nb2prod compile PIPELINE --target T`` run in the root folder: the version is
loaded and checked (:func:`nb2prod.pipeline.load_pipeline`), then
:func:`nb2prod.compile.compile_version` writes ``build/<name>-vN-<target>/``. Every path the
request names or the answer shows is relative to the root; the output folder must resolve inside
it too (``build/`` could be a link elsewhere). Knows nothing of HTTP beyond :class:`ApiError`.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from .errors import ApiError
from .paths import Root, inside
from .runs import version_dir_of

# One compile at a time per output folder: two requests for the same version and target would
# otherwise write the same files at once.
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock(out: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(out, threading.Lock())


def check_target(target: object) -> str:
    """``target`` when nb2prod compiles for it; else a 400 worded for a JSON caller."""
    from ..compile import TARGETS

    if isinstance(target, str) and target in TARGETS:
        return target
    example = json.dumps({"target": next(iter(TARGETS))})
    known = ", ".join(f'"{t}" ({engine})' for t, engine in TARGETS.items())
    if target is None:
        problem = "`target` is missing"
    else:
        shown = json.dumps(target)[:60] if not isinstance(target, str) else repr(target[:60])
        problem = f"`target` {shown} is not an engine nb2prod compiles for"
    raise ApiError(400, f"{problem}. Fix: send one of {known}, e.g. {example}.")


def _shown(text: str, root: Root) -> str:
    """A core message with the root's absolute path left out: API paths are relative to it."""
    return text.replace(str(root.path) + os.sep, "").replace(str(root.path), ".")


def compile_request(root: Root, body: dict[str, Any]) -> dict[str, Any]:
    """Compile the version ``body["pipeline"]`` names for ``body["target"]``.

    Raises ApiError: 400 for a bad field or a version the engine cannot take (a malformed
    resource tag), 403/404 for the pipeline's path, 403 when the output folder would leave the
    root, 422 for a version that does not load (edited by hand, an unsafe pipeline.yaml).
    Nothing is written before the request has passed every check the core makes.
    """
    from ..compile import compile_version, default_out
    from ..pipeline import load_pipeline

    target = check_target(body.get("target"))
    api_path = body.get("pipeline")
    pipeline_dir = root.resolve(api_path, "pipeline", kind="dir")
    assert isinstance(api_path, str)  # resolve refuses anything else
    version_dir = version_dir_of(root, api_path, pipeline_dir)
    try:
        spec = load_pipeline(version_dir)
    except Nb2prodError as exc:
        raise ApiError(422, _shown(exc.message, root)) from None
    out = root.path / default_out(spec, target)
    if not inside(out, root.path):
        shown = out.relative_to(root.path).as_posix()
        raise ApiError(
            403,
            f"{shown} would be written outside the server's root folder (a folder on the way "
            "is a link out of it). Fix: remove the link, or compile from a shell with "
            "`nb2prod compile ... --out DIR`.",
        )
    with _lock(out):
        try:
            result = compile_version(spec, target, out=out)
        except Nb2prodError as exc:
            raise ApiError(400, _shown(exc.message, root)) from None
        except OSError as exc:  # a full disk, a read-only folder: say where, not a traceback
            raise ApiError(
                500,
                f"could not write {_shown(str(exc.filename or out), root)}: "
                f"{exc.strerror or exc}. Fix: free space or make the folder writable, "
                "then compile again.",
            ) from None
    reply = result.to_json()
    reply["out"] = root.relative(result.out) or _shown(str(result.out), root)
    reply["next_steps"] = [_shown(line, root) for line in result.next_steps]
    reply["pipeline"] = spec.name
    reply["version"] = spec.version
    reply["version_dir"] = root.relative(spec.path) or api_path
    return reply
