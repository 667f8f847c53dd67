"""Run-time parameters: config.yaml, layered with ``-f`` files and ``-p key=value`` overrides."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .errors import Nb2prodError
from .params import type_name


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value``, the value typed as YAML (``3`` is an int, ``[1, 2]`` a list)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise Nb2prodError(f"-p {text!r}: expected KEY=VALUE. Fix: e.g. -p learning_rate=0.1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise Nb2prodError(
            f"-p {text!r}: the value is not valid YAML ({exc.__class__.__name__}). Fix: quote "
            f"it, e.g. -p '{key}=\"{raw}\"'"
        ) from None
    return key, value


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise Nb2prodError(
            f"{path}: cannot be read ({exc.strerror}). Fix: check the path."
        ) from None
    except yaml.YAMLError as exc:
        raise Nb2prodError(f"{path}: is not valid YAML ({exc}). Fix: correct the file.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Nb2prodError(f"{path}: must be a mapping of parameter: value. Fix: correct the file.")
    return data


def _compatible(default: Any, value: Any) -> bool:
    if value is None or default is None:
        return True  # None means "unset" for any parameter, as in scikit-learn
    if isinstance(default, bool) or isinstance(value, bool):
        return type(default) is type(value)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return type(default) is type(value)


def effective_params(
    defaults: dict[str, Any],
    files: Iterable[Path] = (),
    assignments: Iterable[str] = (),
    params: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(effective parameters, the overrides that changed them). Raises on unknown keys/types."""
    overrides: dict[str, tuple[Any, str]] = {}
    for f in files:
        for key, value in read_config_file(f).items():
            overrides[str(key)] = (value, f"{f}")
    for text in assignments:
        key, value = parse_assignment(text)
        overrides[key] = (value, f"-p {text}")
    for key, value in (params or {}).items():
        overrides[key] = (value, f"parameter {key}")
    effective = dict(defaults)
    for key, (value, origin) in overrides.items():
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1, cutoff=0.5)
            hint = f"did you mean `{close[0]}`?" if close else "known: " + ", ".join(defaults)
            raise Nb2prodError(
                f"{origin}: unknown parameter `{key}`. Fix: {hint}"
                if defaults
                else f"{origin}: unknown parameter `{key}`; this pipeline has no parameters."
            )
        default = defaults[key]
        if not _compatible(default, value):
            kind = type_name(default)
            article = "an" if kind[0] in "aeiou" else "a"
            example = json.dumps(default) if isinstance(default, (list, dict, str)) else default
            if isinstance(default, bool):
                example = str(default).lower()
            raise Nb2prodError(
                f"{origin}: parameter `{key}` is {article} {kind} (default {default!r}), "
                f"but got the {type(value).__name__} {value!r}. Fix: give {article} {kind}, "
                f"e.g. -p '{key}={example}'"
            )
        effective[key] = value
    changed = {k: v for k, v in effective.items() if k in overrides}
    return effective, changed
