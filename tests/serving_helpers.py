"""Shared by the serving tests: a notebook with a serving function that its evaluation step
calls, and a real MLflow scoring server on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import nb2prod_command

# The evaluation step calls the serving function on the test rows and writes what it returned
# to eval_predictions.csv beside the notebook, so a test can compare the served model with it.
SERVING_CELLS = [
    (
        "import numpy as np\n"
        "import pandas as pd\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.preprocessing import StandardScaler",
        [],
    ),
    (
        "features = ['a', 'b']  # the columns the model uses\nC = 1.0  # regularisation",
        ["parameters"],
    ),
    (
        "rng = np.random.default_rng(0)\n"
        "data = pd.DataFrame({'a': rng.normal(size=300), 'b': rng.normal(size=300),"
        " 'noise': rng.normal(size=300)})\n"
        "data['y'] = (data.a + 0.5 * data.b + 0.3 * data.noise > 0).astype(int)\n"
        "train, test = data.iloc[:200], data.iloc[200:]",
        ["preprocessing"],
    ),
    (
        "scaler = StandardScaler().fit(train[features])\n"
        "model = LogisticRegression(C=C).fit(scaler.transform(train[features]), train.y)",
        ["training"],
    ),
    (
        "def predict(raw: pd.DataFrame):\n"
        "    X = scaler.transform(raw[features])\n"
        "    return model.predict(X)",
        ["serving"],
    ),
    (
        "X_test = test.drop(columns='y')\n"
        "pred = predict(X_test)\n"
        "X_test.assign(pred=pred).to_csv('eval_predictions.csv')\n"
        "accuracy = float((pred == test.y).mean())",
        ["evaluation"],
    ),
    ("accuracy", ["metrics"]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(port: int, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def rows(frame: Any) -> dict[str, Any]:
    """A DataFrame as MLflow's `dataframe_split` request body."""
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}


@contextmanager
def scoring_server(
    command: Sequence[str], port: int, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Start ``command`` (which serves on ``port``), wait for /ping, stop it afterwards."""
    proc = subprocess.Popen(
        list(command),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its uvicorn child goes with it
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read() if proc.stdout else ""
                    raise AssertionError(f"the scoring server did not start:\n{out}") from None
                time.sleep(0.3)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def serve_command(*args: str) -> list[str]:
    return [*nb2prod_command(), "serve", *args]
