"""``nb2prod compile``: an exported version as a Kubeflow Pipelines pipeline or an Airflow DAG.

The engines schedule, retry and scale; every task they run is ``nb2prod step``, and a last task
``nb2prod track``. What is written goes outside the (immutable) version folder, by default to
``build/<name>-vN-<target>/``, and is the same bytes for the same version and options. kfp and
Airflow are never imported to generate code (kfp's compiler runs in a subprocess when present).
What the targets share (engine settings from Kale's tags, parameter kinds, the image's
Dockerfile, writing the output folder whole) is in :mod:`.common`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..pipeline import PipelineSpec

#: target -> the engine's name, as messages show it
TARGETS = {"kfp": "Kubeflow Pipelines", "airflow": "Airflow"}


@dataclass(frozen=True)
class CompileResult:
    target: str
    out: Path  # the folder written
    files: tuple[str, ...]  # relative to ``out``, sorted
    next_steps: tuple[str, ...] = ()  # commands to try next, shown by the CLI

    def text(self) -> str:
        lines = [f"Compiled for {TARGETS[self.target]} -> {self.out}: {', '.join(self.files)}"]
        lines += [f"  {line}" for line in self.next_steps]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "out": self.out.as_posix(),
            "files": list(self.files),
            "next_steps": list(self.next_steps),
        }


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise Nb2prodError(
            f"--target {target!r}: nb2prod compiles for {', '.join(TARGETS)} only. "
            "Fix: pass --target kfp (Kubeflow Pipelines) or --target airflow."
        )


def default_out(spec: PipelineSpec, target: str) -> Path:
    return Path("build") / f"{spec.name}-v{spec.version}-{target}"


def compile_version(
    spec: PipelineSpec, target: str, out: Path | None = None, image: str | None = None
) -> CompileResult:
    """Write ``spec`` compiled for ``target`` to ``out`` (default :func:`default_out`).
    Raises :class:`Nb2prodError` (exit 2), having written nothing, on bad input."""
    check_target(target)
    if out is None:
        from .common import project_root

        # build/ of the project, also when the command runs elsewhere (PIPELINE absolute).
        out = default_out(spec, target)
        root = project_root(spec)
        out = out if Path.cwd().resolve() == root else root / out
    if target == "kfp":
        from .kfp import compile_kfp

        return compile_kfp(spec, out, image)
    from .airflow import compile_airflow

    return compile_airflow(spec, out, image)
