"""Tornado handlers of the REST API: parse the request, check auth, call the core, answer JSON.

Every method is ``@tornado.web.authenticated`` (a logged-in user or a valid token) and
``@authorized`` (jupyter_server's authorizer allows the action on resource ``nb2prod``):
reading is ``read``, exporting and compiling ``write``, starting a run ``execute``. Nothing
slow runs on the server's event loop: file work (compiling included) runs in a thread, and
analysing notebooks (inspect, export), which holds the GIL, in a worker process (:mod:`.work`).

Request bodies are JSON objects of at most :data:`MAX_BODY_BYTES`, nested at most
:data:`MAX_DEPTH` levels, without ``NaN`` or ``Infinity`` (which Python's JSON reader would
otherwise accept and run.json could then not hold).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from . import notebooks, runs, work
from .compile import compile_request
from .errors import ApiError
from .paths import Root

AUTH_RESOURCE = "nb2prod"
LAUNCHER = "nb2prod_launcher"  # the web app setting holding this server's Launcher
RUN_ID = r"(?P<run_id>[^/]+)"
MAX_BODY_BYTES = 8 * 2**20  # a notebook's code and Markdown; the UI leaves outputs out
MAX_DEPTH = 64  # nbformat needs about 6 levels; cell metadata and parameters a few more


class Nb2prodHandler(APIHandler):
    """Shared by every nb2prod handler: the auth resource, JSON bodies and JSON errors."""

    auth_resource = AUTH_RESOURCE

    @property
    def root(self) -> Root:
        return Root(self.contents_manager)

    async def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object; see the module docs for what is refused."""
        raw = self.request.body or b"{}"
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(
                413,
                f"the request body is {len(raw) / 2**20:.1f} MiB; nb2prod takes at most "
                f"{MAX_BODY_BYTES // 2**20} MiB per request. Fix: leave cell outputs and "
                "attachments out of `content` (a plan needs only the cells' source), or save "
                "the notebook and use GET /nb2prod/inspect?path=...",
            )
        return await asyncio.to_thread(parse_body, raw)

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(_finite(data), default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": exc.message, **exc.extra}, default=str))
            return
        super().write_error(status_code, **kwargs)


class _NotJson(ValueError):
    def __init__(self, constant: str) -> None:
        super().__init__(constant)
        self.constant = constant


def _refuse_constant(constant: str) -> Any:
    raise _NotJson(constant)


def _depth(data: Any) -> int:
    """How deeply ``data`` nests lists and objects, counted without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
            stack.extend(
                (v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def parse_body(raw: bytes) -> dict[str, Any]:
    """A request body: one JSON object, finite numbers only, at most MAX_DEPTH levels deep."""
    too_deep = ApiError(
        400,
        f"the request body is nested more than {MAX_DEPTH} levels deep. Fix: send flatter "
        "JSON; no notebook or parameter needs that much nesting.",
    )
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except _NotJson as exc:
        raise ApiError(
            400,
            f"the request body is not valid JSON: `{exc.constant}` is not JSON (JSON has no "
            "NaN or infinities, and run records must stay JSON). Fix: send a finite number, "
            "or null.",
        ) from None
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc}).") from None
    if _depth(body) > MAX_DEPTH:
        raise too_deep
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object.")
    return body


def _finite(data: Any) -> Any:
    """NaN and infinities as strings: a metric can be NaN, and browsers' JSON.parse rejects it."""
    if isinstance(data, float) and not math.isfinite(data):
        return str(data).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_finite(v) for v in data]
    return data


class InspectHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        path = self.get_query_argument("path", None)
        os_path = await asyncio.to_thread(self.root.resolve, path)
        self.reply(await work.run(notebooks.inspect_file, os_path, str(path)))

    @tornado.web.authenticated
    @authorized("read")  # plans the editor's content; writes nothing
    async def post(self) -> None:
        body = await self.json_body()
        if "content" not in body:
            raise ApiError(400, "`content` is missing: send the notebook's JSON.")
        path = body.get("path")
        os_path = await asyncio.to_thread(self.root.resolve, path)
        content = body["content"]
        if not isinstance(content, dict):
            raise ApiError(400, "`content` must be a notebook (a JSON object).")
        self.reply(await work.run(notebooks.inspect_content, content, os_path, str(path)))


class ExportHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("write")
    async def post(self) -> None:
        body = await self.json_body()
        root = self.root
        name = notebooks.check_export_name(body.get("name"))
        path = body.get("path")
        os_path = await asyncio.to_thread(root.resolve, path)
        self.reply(await work.run(notebooks.export_file, root.path, os_path, str(path), name))


class RunsHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        pipeline = self.get_query_argument("pipeline", None)
        text = self.get_query_argument("limit", "20")
        if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= 1000:
            raise ApiError(400, "`limit` must be a whole number from 1 to 1000.")
        found = await asyncio.to_thread(runs.list_runs, self.root, pipeline, int(text))
        self.reply({"runs": found})

    @tornado.web.authenticated
    @authorized("execute")  # a run executes the pipeline's code
    async def post(self) -> None:
        body = await self.json_body()
        root = self.root
        request = await asyncio.to_thread(runs.check_request, root, body)
        launcher: runs.Launcher = self.settings[LAUNCHER]
        run_id = await asyncio.to_thread(launcher.start, root, request)
        self.reply(
            {"id": run_id, "pipeline": request.pipeline, "version": request.version}, status=202
        )


class RunHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        self.reply(await asyncio.to_thread(runs.read_run, self.root, run_id))


class RunNotebookHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        step = self.get_query_argument("step", None)
        self.reply(await asyncio.to_thread(runs.executed_notebook, self.root, run_id, step))


class RunReportHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        step = self.get_query_argument("step", None)
        html = await asyncio.to_thread(runs.step_report, self.root, run_id, step)
        # The report holds the notebook's own outputs: never run them on the server's origin.
        self.set_header("Content-Security-Policy", "sandbox")
        self.finish(html, set_content_type="text/html; charset=utf-8")


class PipelinesHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        from ..catalog import list_pipelines

        root = self.root
        found = await asyncio.to_thread(list_pipelines, root.path / notebooks.PIPELINES, root.path)
        self.reply({"pipelines": found})


class CompileHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("write")  # writes build/<name>-vN-<target>/; runs none of the pipeline's code
    async def post(self) -> None:
        body = await self.json_body()
        self.reply(await asyncio.to_thread(compile_request, self.root, body))


ROUTES: list[tuple[str, type[Nb2prodHandler]]] = [
    ("inspect", InspectHandler),
    ("export", ExportHandler),
    ("runs", RunsHandler),
    (f"runs/{RUN_ID}", RunHandler),
    (f"runs/{RUN_ID}/notebook", RunNotebookHandler),
    (f"runs/{RUN_ID}/report", RunReportHandler),
    ("pipelines", PipelinesHandler),
    ("compile", CompileHandler),
]


def setup_handlers(web_app: Any) -> None:
    """Register the routes under ``<base_url>/nb2prod/``."""
    web_app.settings.setdefault(LAUNCHER, runs.Launcher())
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [(url_path_join(base_url, "nb2prod", route) + "/?$", cls) for route, cls in ROUTES],
    )
