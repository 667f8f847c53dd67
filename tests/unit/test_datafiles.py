"""nb2prod.plan.datafiles: which files a step reads, found in its code and its parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nb2prod.plan.planner import inspect_notebook

from conftest import write_notebook


def reads(tmp_path: Path, code: str, params: str = "", files: tuple[str, ...] = ()) -> Any:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1")
    cells: list[Any] = [("import numpy as np\nimport pandas as pd\n" + params, ["parameters"])]
    cells.append((code, ["preprocessing"]))
    plan = inspect_notebook(write_notebook(tmp_path / "nb.ipynb", cells))
    return plan, [(d.path, d.parameter) for d in plan.steps[0].data]


@pytest.mark.parametrize(
    "code",
    [
        "x = pd.read_csv('in.csv')",
        "x = pd.read_parquet(path='in.csv')",
        "x = np.loadtxt('in.csv')",
        "x = open('in.csv').read()",
        "x = open('in.csv', 'rb').read()",
        "from pathlib import Path\nx = Path('in.csv').read_text()",
        "import joblib\nx = joblib.load('in.csv')",
        "import json\nx = json.load(open('in.csv'))",
        "import pandas\nx = pandas.read_json('in.csv')",
        "from pandas import read_csv as rc\nx = rc('in.csv')",
    ],
)
def test_literal_paths_given_to_readers(tmp_path: Path, code: str) -> None:
    _, found = reads(tmp_path, code, files=("in.csv",))
    assert found == [("in.csv", None)]


@pytest.mark.parametrize(
    "code",
    [
        "x = open('in.csv', 'w')",  # writing
        "x = pd.read_csv('missing.csv')",  # not there: nothing to fingerprint
        "x = pd.read_csv(f'{1}.csv')",  # not a literal
        "pd.DataFrame().to_csv('in.csv')\ny = pd.read_csv('in.csv')",  # the pipeline makes it
        "x = len('in.csv')",  # not a reader
    ],
)
def test_what_is_not_a_data_input(tmp_path: Path, code: str) -> None:
    _, found = reads(tmp_path, code, files=("in.csv",))
    assert found == []


def test_path_parameters_name_existing_files_and_folders(tmp_path: Path) -> None:
    params = "train = 'data/train.csv'\nimages = 'data/img'\nname = 'model'\nn = 3"
    (tmp_path / "data" / "img").mkdir(parents=True)
    code = "x = pd.read_csv(train)\ny = images + name + str(n)"
    _, found = reads(tmp_path, code, params, files=("data/train.csv",))
    assert sorted(found) == [("data/img", "images"), ("data/train.csv", "train")]


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.makedirs(out_dir, exist_ok=True)",
        "import os\npd.DataFrame().to_csv(os.path.join(out_dir, 'x.csv'))",
        "from pathlib import Path\nPath(out_dir).mkdir(exist_ok=True)",
        "open(f'{out_dir}/log.txt', 'w').write('x')",
    ],
)
def test_a_folder_parameter_the_pipeline_writes_into_is_not_an_input(
    tmp_path: Path, code: str
) -> None:
    """A run from a fresh checkout, without the folder, must not be refused for it."""
    (tmp_path / "results").mkdir()
    _, found = reads(tmp_path, code, "out_dir = 'results'")
    assert found == []


def test_remote_sources_are_recorded_and_warned_about(tmp_path: Path) -> None:
    plan, found = reads(tmp_path, "x = pd.read_csv('s3://bucket/train.csv')")
    assert found == [("s3://bucket/train.csv", None)]
    [warning] = [p for p in plan.problems if p.code == "remote-data"]
    assert warning.severity == "warning" and "cannot fingerprint" in warning.message
    assert "--no-cache" in warning.fix
