"""Run-time parameters: config.yaml, layered with ``-f`` files and ``-p key=value`` overrides.

:func:`effective_params` checks every override against the version's defaults (a known key, a
compatible type, a finite plain value) and raises :class:`ParameterError`. That error carries
the facts (the parameter, its default, the value, where the value came from) and words them
for whoever reads it: ``message`` for the command line and the Python API,
:meth:`ParameterError.for_request` for a REST answer, which names the JSON field and gives a
JSON example instead of a command-line flag.

YAML here is user input, so it is read with a loader that refuses anchors and aliases (an alias
"bomb" of 400 bytes expands to ten million items) and keeps dates as text, and a parameter
file may hold at most :data:`MAX_FILE_BYTES`.
"""

from __future__ import annotations

import difflib
import json
import math
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import Nb2prodError

MAX_FILE_BYTES = 1 << 20  # a parameter file is a handful of values, never data
Reason = Literal["unknown", "type", "not-finite", "not-plain"]
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _AliasFound(yaml.YAMLError):
    def __init__(self, line: int) -> None:
        super().__init__(f"anchor or alias on line {line}")
        self.line = line


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases, and reads dates as strings (JSON has none)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        # Refusing anchors too (not only aliases) keeps the message at the first `&`, and an
        # anchor without an alias has no use in a parameter value.
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasFound(event.start_mark.line + 1)
        return super().compose_node(parent, index)


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass


def _shell(text: str) -> str:
    """``text`` quoted as a user would type it after ``-p``."""
    return f"'{text}'" if "'" not in text else shlex.quote(text)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value``, the value typed as YAML (``3`` is an int, ``[1, 2]`` a list)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise Nb2prodError(f"-p {_shell(text)}: expected KEY=VALUE. Fix: e.g. -p learning_rate=0.1")
    quoted = f"-p {_shell(f'{key}={json.dumps(raw)}')}"
    try:
        value = _load_yaml(raw) if raw.strip() else ""
    except _AliasFound:
        raise Nb2prodError(
            f"-p {_shell(text)}: the value uses a YAML anchor or alias (`&name` or `*name`), "
            "which nb2prod refuses in parameter values. Fix: write the value out in full, or "
            f"quote it if it is text: {quoted}"
        ) from None
    except RecursionError:
        raise Nb2prodError(
            f"-p {_shell(text)}: the value is nested too deeply. Fix: pass a flatter value."
        ) from None
    except yaml.YAMLError as exc:
        raise Nb2prodError(
            f"-p {_shell(text)}: the value is not valid YAML ({exc.__class__.__name__}). "
            f"Fix: quote it, e.g. {quoted}"
        ) from None
    return key, value


def read_config_file(path: Path) -> dict[str, Any]:
    """A ``-f`` file: a YAML mapping of parameter: value, at most MAX_FILE_BYTES long."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # not read_bytes(): /dev/zero has no end
    except OSError as exc:
        raise Nb2prodError(
            f"{path}: cannot be read ({exc.strerror}). Fix: check the path."
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise Nb2prodError(
            f"{path}: is larger than 1 MiB; parameter files may hold at most 1 MiB. Fix: keep "
            "data out of parameters: save it to a data file and pass that file's path."
        )
    try:
        loaded = _load_yaml(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise Nb2prodError(f"{path}: is not UTF-8 text. Fix: save it as UTF-8.") from None
    except _AliasFound as exc:
        raise Nb2prodError(
            f"{path}: line {exc.line} uses a YAML anchor or alias (`&name` or `*name`); "
            "nb2prod refuses them in parameter files, because a few hundred bytes of aliases "
            "can expand to gigabytes. Fix: write each value out in full."
        ) from None
    except RecursionError:
        raise Nb2prodError(f"{path}: is nested too deeply. Fix: use flatter values.") from None
    except yaml.YAMLError as exc:
        raise Nb2prodError(f"{path}: is not valid YAML ({exc}). Fix: correct the file.") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise Nb2prodError(f"{path}: must be a mapping of parameter: value. Fix: correct the file.")
    return loaded


# --- the error, worded for its reader -----------------------------------------------------------
_PY_KIND = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
_JSON_KIND = {  # what a JSON caller must send for a default of this type
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


def _json_value(value: Any) -> str:
    """How a REST caller would describe what they sent: ``the string "big"``, ``an object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return _json_text(value)
    if isinstance(value, (int, float)):
        return f"the number {_short(_json_text(value))}"
    if isinstance(value, str):
        return f"the string {_short(_json_text(value))}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return _short(repr(value))


def _cli_example(default: Any) -> str:
    """The default as ``-p`` and YAML files take it: JSON is valid YAML, and unambiguous."""
    if isinstance(default, (list, dict, str, bool)):
        return _json_text(default)
    return str(default)


class ParameterError(Nb2prodError):
    """An override the version cannot take: unknown, of the wrong type, not finite, not plain.

    ``origin`` is where the value came from: ``-p 'C=big'``, a ``-f`` file's path, or None for
    values given as data (``run_pipeline(params=...)``, the widgets, the REST API).
    """

    def __init__(
        self,
        key: str,
        reason: Reason,
        *,
        origin: str | None = None,
        value: Any = None,
        default: Any = None,
        known: Sequence[str] = (),
        suggestion: str | None = None,
    ) -> None:
        self.key = key
        self.reason = reason
        self.origin = origin
        self.value = value
        self.default = default
        self.known = tuple(known)
        self.suggestion = suggestion
        super().__init__(self._for_cli())

    # The command line, a -f file, or a Python caller.
    def _example(self) -> str:
        if self.origin is None:
            return repr(self.default)
        if self.origin.startswith("-p "):
            return f"-p {_shell(f'{self.key}={_cli_example(self.default)}')}"
        return f"`{self.key}: {_cli_example(self.default)}`"

    def _for_cli(self) -> str:
        where = f"{self.origin}: " if self.origin else ""
        if self.reason == "unknown":
            if not self.known:
                return (
                    f"{where}unknown parameter `{self.key}`; this pipeline has no parameters. "
                    "Fix: remove it."
                )
            if self.suggestion:
                fix = f"did you mean `{self.suggestion}`?"
                return f"{where}unknown parameter `{self.key}`. Fix: {fix}"
            names = ", ".join(f"`{k}`" for k in self.known)
            return f"{where}unknown parameter `{self.key}`. Fix: choose from {names}."
        if self.reason == "not-plain":
            return (
                f"{where}parameter `{self.key}` got {_short(repr(self.value))}, which is not a "
                "plain value. Fix: give a number, string, true/false, null, list or mapping."
            )
        kind = _PY_KIND.get(type(self.default), "value")
        example = "" if self.default is None else f", e.g. {self._example()}"
        if self.reason == "not-finite":
            return (
                f"{where}parameter `{self.key}` must be a finite number, but got "
                f"{_short(repr(self.value))}: run records and MLflow cannot hold it. "
                f"Fix: give a finite number{example}"
            )
        got = f"the {type(self.value).__name__} {_short(repr(self.value))}"
        return (
            f"{where}parameter `{self.key}` is {_article(kind)} {kind} (default "
            f"{self.default!r}), but got {got}. Fix: give {_article(kind)} {kind}{example}"
        )

    def for_request(self, field: str = "params") -> str:
        """The same error for a REST caller: ``field.key`` and a JSON example, never a flag."""
        name = f"`{field}.{self.key}`"

        def body(key: str, value: Any) -> str:
            return _json_text({field: {key: value}})

        if self.reason == "unknown":
            if not self.known:
                return f"{name}: this pipeline has no parameters. Fix: leave `{field}` out."
            if self.suggestion:
                # The caller's own value under the right name, unless it is long.
                value = self.value if len(_json_text(self.value)) <= 40 else self.default
                return (
                    f"{name}: this pipeline has no parameter `{self.key}`. Fix: did you mean "
                    f"`{self.suggestion}`? e.g. {body(self.suggestion, value)}"
                )
            names = ", ".join(f"`{k}`" for k in self.known)
            return f"{name}: this pipeline has no parameter `{self.key}`. Fix: use one of {names}."
        example = "" if self.default is None else f", e.g. {body(self.key, self.default)}"
        if self.reason == "not-finite":
            return (
                f"{name} must be a finite number, but got {_short(_json_text(self.value))}: "
                f"run records and MLflow cannot hold it. Fix: send a finite number{example}"
            )
        if self.reason == "not-plain":  # JSON cannot express one; kept for completeness
            return f"{name} is not a plain JSON value. Fix: send a JSON value{example}"
        kind = _JSON_KIND.get(type(self.default), "a JSON value")
        return (
            f"{name} must be {kind} (default {_json_text(self.default)}), but got "
            f"{_json_value(self.value)}. Fix: send {kind}{example}"
        )


# --- checking overrides -------------------------------------------------------------------------
def _suggest(key: str, known: Sequence[str]) -> str | None:
    """The closest known name, ignoring case first: `-p c=0.1` means `C`."""
    folded: dict[str, str] = {}
    for name in known:
        folded.setdefault(name.casefold(), name)
    if key.casefold() in folded:
        return folded[key.casefold()]
    close = difflib.get_close_matches(key.casefold(), list(folded), n=1, cutoff=0.5)
    return folded[close[0]] if close else None


def _compatible(default: Any, value: Any) -> bool:
    if value is None or default is None:
        return True  # None means "unset" for any parameter, as in scikit-learn
    if isinstance(default, bool) or isinstance(value, bool):
        return type(default) is type(value)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return type(default) is type(value)


def _value_problem(value: Any) -> Reason | None:
    """Whether run.json (strict JSON), config.yaml and MLflow can record ``value`` as it is."""
    stack = [value]
    while stack:  # not recursive: the value may be as deep as the parser allowed
        item = stack.pop()
        if item is None or type(item) in (bool, int, str):
            continue
        if type(item) is float:
            if not math.isfinite(item):
                return "not-finite"
        elif type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            if not all(k is None or type(k) in (bool, int, float, str) for k in item):
                return "not-plain"
            stack.extend(item.values())
        else:
            return "not-plain"
    return None


def check_override(defaults: dict[str, Any], key: str, value: Any, origin: str | None) -> None:
    """Raise :class:`ParameterError` unless ``key=value`` may override ``defaults``."""
    known = [str(k) for k in defaults]
    if key not in defaults:
        suggestion = _suggest(key, known)
        default = defaults.get(suggestion) if suggestion is not None else None
        raise ParameterError(
            key,
            "unknown",
            origin=origin,
            value=value,
            default=default,
            known=known,
            suggestion=suggestion,
        )
    default = defaults[key]
    facts: dict[str, Any] = {"origin": origin, "value": value, "default": default}
    problem = _value_problem(value)
    if problem is not None:
        raise ParameterError(key, problem, **facts)
    if not _compatible(default, value):
        raise ParameterError(key, "type", **facts)


def effective_params(
    defaults: dict[str, Any],
    files: Iterable[Path] = (),
    assignments: Iterable[str] = (),
    params: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(effective parameters, the overrides that changed them).

    Layers, later ones winning: ``files`` (``-f``), ``assignments`` (``-p``), ``params``.
    Raises :class:`ParameterError` for an unknown key or a bad value, and
    :class:`~nb2prod.errors.Nb2prodError` for a file or ``-p`` text that cannot be read.
    """
    overrides: dict[str, tuple[Any, str | None]] = {}
    for f in files:
        for key, value in read_config_file(f).items():
            overrides[str(key)] = (value, f"{f}")
    for text in assignments:
        key, value = parse_assignment(text)
        overrides[key] = (value, f"-p {_shell(text)}")
    for key, value in (params or {}).items():
        overrides[key] = (value, None)
    effective = dict(defaults)
    for key, (value, origin) in overrides.items():
        check_override(defaults, key, value, origin)
        effective[key] = value
    changed = {k: v for k, v in effective.items() if k in overrides}
    return effective, changed
