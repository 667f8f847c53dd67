"""Tornado handlers of the REST API: parse the request, check auth, call the core, answer JSON.

Every method is ``@tornado.web.authenticated`` (a logged-in user or a valid token) and
``@authorized`` (jupyter_server's authorizer allows the action on resource ``nb2prod``):
reading is ``read``, exporting ``write``, starting a run ``execute``. The core functions do
file and CPU work, so they run in a worker thread, never on the server's event loop.
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

from . import notebooks, runs
from .errors import ApiError
from .paths import Root

AUTH_RESOURCE = "nb2prod"
LAUNCHER = "nb2prod_launcher"  # the web app setting holding this server's Launcher
RUN_ID = r"(?P<run_id>[^/]+)"


class Nb2prodHandler(APIHandler):
    """Shared by every nb2prod handler: the auth resource, JSON bodies and JSON errors."""

    auth_resource = AUTH_RESOURCE

    @property
    def root(self) -> Root:
        return Root(self.contents_manager)

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc}).") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object.")
        return body

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
        self.reply(await asyncio.to_thread(notebooks.inspect, self.root, path))

    @tornado.web.authenticated
    @authorized("read")  # plans the editor's content; writes nothing
    async def post(self) -> None:
        body = self.json_body()
        if "content" not in body:
            raise ApiError(400, "`content` is missing: send the notebook's JSON.")
        content = body["content"]
        self.reply(await asyncio.to_thread(notebooks.inspect, self.root, body.get("path"), content))


class ExportHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("write")
    async def post(self) -> None:
        body = self.json_body()
        root = self.root
        self.reply(
            await asyncio.to_thread(notebooks.export, root, body.get("path"), body.get("name"))
        )


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
        body = self.json_body()
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


class PipelinesHandler(Nb2prodHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        from ..catalog import list_pipelines

        root = self.root
        found = await asyncio.to_thread(list_pipelines, root.path / notebooks.PIPELINES, root.path)
        self.reply({"pipelines": found})


ROUTES: list[tuple[str, type[Nb2prodHandler]]] = [
    ("inspect", InspectHandler),
    ("export", ExportHandler),
    ("runs", RunsHandler),
    (f"runs/{RUN_ID}", RunHandler),
    (f"runs/{RUN_ID}/notebook", RunNotebookHandler),
    ("pipelines", PipelinesHandler),
]


def setup_handlers(web_app: Any) -> None:
    """Register the routes under ``<base_url>/nb2prod/``."""
    web_app.settings.setdefault(LAUNCHER, runs.Launcher())
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [(url_path_join(base_url, "nb2prod", route) + "/?$", cls) for route, cls in ROUTES],
    )
