"""What a run records about its serving model (``run.json``'s ``serving``) and how it is shown."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MODEL_NAME = "serving"  # the model's name on the MLflow parent run: runs:/<id>/serving
SKEW = "training/serving skew"


@dataclass
class ServingOutcome:
    """The serving model of one run: built, checked, or why not."""

    function: str
    signature: str  # ``predict(raw)``, for messages
    model: str | None = None  # the model folder, relative to the run folder
    example_from: str | None = None  # "<caller step>", "<name> from <step>" or None
    rows: int | None = None  # rows of the input example
    skew: str | None = None  # "none" or "found"; None when not checked
    status: str = "failed"  # "ok" or "failed"
    error: str | None = None
    warnings: list[str] | None = None
    duration: float | None = None
    key: str | None = None  # what the model was built from: a later run with it reuses it
    reused_from: str | None = None  # the run that built it, when this run reused its model

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v for k, v in data.items() if v is not None or k in ("example_from", "skew")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServingOutcome:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def failed(cls, function: str, signature: str, error: str) -> ServingOutcome:
        return cls(function=function, signature=signature, error=error)


def summary_line(record: dict[str, Any]) -> str | None:
    """``serving: predict(raw) logged as model 'serving', no training/serving skew on 100 rows``;
    None for a run without a serving model."""
    serving = record.get("serving")
    if not isinstance(serving, dict):
        return None
    shown = serving.get("signature") or serving.get("function")
    if serving.get("skew") == "found":
        return f"serving: {shown} saved as {serving.get('model')}, {SKEW} found (see above)"
    if serving.get("status") != "ok":
        return f"serving: {shown}: no serving model (see above)"
    tracking = record.get("tracking") or {}
    if tracking.get("ok") and tracking.get("serving_model"):
        where = f"logged as model '{MODEL_NAME}'"
    else:
        where = f"saved as {serving.get('model')}"
    return f"serving: {shown} {where}, {check_phrase(serving)}"


def check_phrase(serving: dict[str, Any]) -> str:
    """What the skew check of a built model found, in words (the CLI's and the widgets')."""
    rows = serving.get("rows")
    if serving.get("skew") != "none" or not rows:
        return "no input example, so no skew check"
    origin = serving.get("example_from")
    check = f"no {SKEW} on {rows} row{'s' if rows != 1 else ''}"
    return check + (f" (input example from {origin})" if origin else "")
