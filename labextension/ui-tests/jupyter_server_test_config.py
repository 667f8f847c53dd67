"""Server configuration for nb2prod's UI tests.

!! Never use this configuration in production: it opens the server to the world and exposes
JupyterLab's JavaScript objects through the global window variable.

The server's root is a fresh temporary folder (or $JUPYTERLAB_GALATA_ROOT_DIR); pipelines are
exported to its `pipelines/`, runs go to its `.nb2prod/`, and MLflow tracks to a SQLite file
in it, so a test session never touches the repository or a real tracking server.
"""

import os
from tempfile import mkdtemp

from jupyterlab.galata import configure_jupyter_server

root = os.environ.get("JUPYTERLAB_GALATA_ROOT_DIR") or mkdtemp(prefix="nb2prod-ui-")
os.environ["JUPYTERLAB_GALATA_ROOT_DIR"] = root

configure_jupyter_server(c)  # noqa: F821

c.ServerApp.root_dir = root  # noqa: F821
c.ServerApp.port = int(os.environ.get("NB2PROD_UI_PORT", "8899"))  # noqa: F821
c.ServerApp.allow_root = True  # noqa: F821

# Runs are processes started by the server: they inherit this environment.
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{os.path.join(root, 'mlflow.db')}"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

if os.environ.get("NB2PROD_UI_SERVER_LOG") == "debug":
    c.ServerApp.log_level = "DEBUG"  # noqa: F821
