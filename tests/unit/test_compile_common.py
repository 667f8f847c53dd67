"""What every compile target shares: Kale's engine tags checked against Kubernetes' grammar,
parameter kinds, the image's Dockerfile, and writing the output folder all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from compile_helpers import KALE_CELLS, export_cells, export_example, fix_environment

from nb2prod.compile import common
from nb2prod.compile.common import SecretRef, StepSettings
from nb2prod.errors import Nb2prodError


@pytest.fixture(autouse=True)
def _fixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    fix_environment(monkeypatch)


def one_step(project: Path, *tags: str) -> list[str | tuple[str, list[str]]]:
    return [("x = 1", ["parameters"]), ("y = x + 1", ["step:load", *tags])]


def test_kale_tags_become_step_settings(tmp_path: Path) -> None:
    spec = export_cells(tmp_path, "kale", KALE_CELLS)
    settings = common.step_settings(spec, None)
    assert list(settings) == ["load", "train"]
    assert settings["load"] == StepSettings(
        image="python:3.11-slim",
        limits={"cpu": "500m", "memory": "4Gi"},
        accelerator=("nvidia.com/gpu", "1"),
        secrets=(
            SecretRef("api.keys", "token", "API_TOKEN"),
            SecretRef("db-credentials", "password", "DB_PASSWORD"),
        ),
        annotations={"example.com/owner": "data team: fraud"},
        labels={"tier": "batch"},
        cache=False,
    )
    assert settings["train"] == StepSettings("nb2prod-kale:v1", {}, None, (), {}, {}, True)
    assert common.step_settings(spec, "registry.example.com/team/kale:1")["train"].image == (
        "registry.example.com/team/kale:1"
    )


@pytest.mark.parametrize(
    "tag, says",
    [
        ("limit:gpu:two", ["'gpu' is not a Kubernetes resource", "did you mean nvidia.com/gpu?"]),
        ("limit:mem:4Gi", ["'mem' is not a Kubernetes resource", "did you mean memory?"]),
        ("limit:memory:4GB", ["'4GB' is not a Kubernetes quantity", "4Gi"]),
        ("limit:cpu:two", ["'two' is not a Kubernetes quantity", "500m"]),
        ("limit:nvidia.com/gpu:1.5", ["accelerators come whole", "limit:nvidia.com/gpu:1"]),
        ("limit:nvidia.com/gpu:0", ["not a whole number", "positive"]),
        ("image:Team/Image:1", ["not a container image reference"]),
        ("label:tier:" + "x" * 64, ["not a Kubernetes label value"]),
        ("label:tier:-batch", ["not a Kubernetes label value"]),
    ],
)
def test_a_malformed_tag_is_refused_naming_the_step_the_tag_and_the_fix(
    tmp_path: Path, tag: str, says: list[str]
) -> None:
    spec = export_cells(tmp_path, "bad", one_step(tmp_path, tag))
    with pytest.raises(Nb2prodError) as caught:
        common.step_settings(spec, None)
    message = str(caught.value)
    assert "step 'load'" in message and f"`{tag}`" in message and "Fix:" in message, message
    assert "\n" not in message
    for text in says:
        assert text in message, message


def test_two_accelerators_on_one_step_are_refused(tmp_path: Path) -> None:
    tags = ("limit:nvidia.com/gpu:1", "limit:amd.com/gpu:1")
    spec = export_cells(tmp_path, "bad", one_step(tmp_path, *tags))
    with pytest.raises(Nb2prodError, match="two kinds of accelerator"):
        common.step_settings(spec, None)


def test_an_image_option_that_is_no_image_is_refused(tmp_path: Path) -> None:
    spec = export_cells(tmp_path, "ok", one_step(tmp_path))
    with pytest.raises(Nb2prodError, match="--image: 'Not An Image' is not a container image"):
        common.step_settings(spec, "Not An Image")


@pytest.mark.parametrize(
    "amount", ["1", "500m", "0.5", ".5", "2.", "4Gi", "128Mi", "1e3", "1E-2", "1k", "+1"]
)
def test_kubernetes_quantities(amount: str) -> None:
    assert common.QUANTITY.fullmatch(amount)


@pytest.mark.parametrize("amount", ["two", "4GB", "-1", "1.2.3", "4 Gi", "", "Gi", "1e", "0x10"])
def test_not_kubernetes_quantities(amount: str) -> None:
    assert not common.QUANTITY.fullmatch(amount)


def test_parameter_kinds_follow_config_defaults(tmp_path: Path) -> None:
    spec = export_example(tmp_path, "wine_models")
    assert common.param_kinds(spec) == {
        "test_size": "float",
        "random_state": "int",
        "stratify": "bool",
        "features_to_drop": "json",
        "rf_params": "json",
        "gb_n_estimators": "int",
        "gb_learning_rate": "float",
        "average": "str",
    }
    assert common.param_kind(None) == "json"


def test_a_parameter_no_engine_can_carry_is_refused(tmp_path: Path) -> None:
    cells = [("limit = 1e999", ["parameters"]), ("y = limit", ["step:a"])]
    spec = export_cells(tmp_path, "inf", cells)
    with pytest.raises(Nb2prodError, match="'limit' defaults to inf"):
        common.param_kinds(spec)


def test_the_default_image_is_named_after_the_pipeline_and_version(tmp_path: Path) -> None:
    spec = export_example(tmp_path, "breast_cancer")
    assert common.default_image(spec) == "nb2prod-breast_cancer:v1"
    assert common.IMAGE.fullmatch(common.default_image(spec))
    assert common.project_root(spec) == tmp_path.resolve()


def data_cells(absolute: Path) -> list[str | tuple[str, list[str]]]:
    return [
        ("import pandas as pd\ntrain_path = 'data/train.csv'", ["parameters"]),
        ("frame = pd.read_csv(train_path)", ["preprocessing"]),
        (
            "labels = pd.read_json('data/my labels.json')\n"
            "shared = pd.read_csv('../shared/extra.csv')\n"
            "outside = pd.read_csv('../../outside.csv')\n"
            "remote = pd.read_csv('s3://bucket/remote.csv')\n"
            f"fixed = pd.read_csv({str(absolute)!r})\n"
            "rows = len(frame) + len(labels) + len(shared) + len(outside) + len(fixed)",
            ["training"],
        ),
    ]


def test_the_dockerfile_installs_pins_at_build_time_and_copies_version_and_data(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    for path in [
        project / "notebooks/data/train.csv",
        project / "notebooks/data/my labels.json",
        project / "shared/extra.csv",
        tmp_path / "outside.csv",
        tmp_path / "absolute.csv",
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n1\n")
    spec = export_cells(project, "reads", data_cells(tmp_path / "absolute.csv"))
    text = common.dockerfile(
        spec, location="build/reads-v1-kfp/Dockerfile", extra_requirements=("kfp==2.17.3",)
    )
    lines = text.splitlines()
    assert "FROM python:3.11-slim" in lines
    assert "WORKDIR /project" in lines
    assert "COPY pipelines/reads/v1/requirements.txt build/wheel[s] /tmp/install/" in lines
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install"))
    assert "-r /tmp/install/requirements.txt kfp==2.17.3" in lines[install]
    assert "COPY pipelines/reads/v1/ pipelines/reads/v1/" in lines
    # Data: paths relative to the notebook's folder become paths under the project root.
    assert "COPY notebooks/data/train.csv notebooks/data/train.csv" in lines
    assert 'COPY ["notebooks/data/my labels.json", "notebooks/data/my labels.json"]' in lines
    assert "COPY shared/extra.csv shared/extra.csv" in lines
    not_copied = [line for line in lines if line.startswith("# Not copied")]
    assert len(not_copied) == 2, not_copied
    assert "outside.csv" in not_copied[0] and "outside the project" in not_copied[0]
    assert "absolute.csv" in not_copied[1] and "absolute" in not_copied[1]
    assert "s3://" not in text  # read at run time
    assert "RUN mkdir -p notebooks" in lines
    assert "#   docker build -f build/reads-v1-kfp/Dockerfile -t nb2prod-reads:v1 ." in lines
    # Nothing is fetched when a step runs: the only RUN lines install and make folders.
    runs = [line for line in lines if line.startswith("RUN ")]
    assert [r.split()[1] for r in runs] == ["pip", "mkdir"]
    ignore = common.dockerignore(spec).splitlines()
    assert ignore[1:] == [
        "*",
        "!pipelines/reads/v1/",
        "!build/wheels/",
        "!notebooks/data/my labels.json",
        "!notebooks/data/train.csv",
        "!shared/extra.csv",
    ]


def test_a_version_without_a_recorded_environment_has_no_image(tmp_path: Path) -> None:
    from dataclasses import replace

    spec = replace(export_example(tmp_path, "breast_cancer"), environment=None)
    with pytest.raises(Nb2prodError, match="export the notebook again"):
        common.dockerfile(spec)


def test_outputs_are_written_whole_and_replace_only_an_earlier_compile(tmp_path: Path) -> None:
    out = tmp_path / "build" / "x"
    assert common.write_outputs(out, {"b.txt": "2", "a.txt": "1"}) == ("a.txt", "b.txt")
    assert (out / "a.txt").read_text() == "1"
    (out / "__pycache__").mkdir()  # left by importing pipeline.py: no one's work
    (out / ".ipynb_checkpoints").mkdir()  # left by opening pipeline.py in JupyterLab
    common.write_outputs(out, {"a.txt": "one", "b.txt": "two"})  # an earlier compile: replaced
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["x"]  # no temporary left behind
    (out / "notes.md").write_text("mine")
    with pytest.raises(Nb2prodError, match=r"did not write \(notes.md\)"):
        common.write_outputs(out, {"a.txt": "again", "b.txt": "again"})
    assert (out / "a.txt").read_text() == "one"


def test_outputs_are_never_written_into_a_version(tmp_path: Path) -> None:
    spec = export_example(tmp_path, "breast_cancer")
    before = sorted(p.name for p in spec.path.rglob("*"))
    with pytest.raises(Nb2prodError, match="inside the version folder"):
        common.write_outputs(spec.path / "build", {"a.txt": "1"})
    assert sorted(p.name for p in spec.path.rglob("*")) == before


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = []
    real = Path.write_text

    def flaky(self: Path, data: str, *args: object, **kwargs: object) -> int:
        if written:
            raise OSError(28, "No space left on device")
        written.append(self)
        return real(self, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", flaky)
    out = tmp_path / "build" / "x"
    with pytest.raises(Nb2prodError, match="No space left on device"):
        common.write_outputs(out, {"a.txt": "1", "b.txt": "2"})
    assert written and not out.exists()
    assert list((tmp_path / "build").iterdir()) == []
