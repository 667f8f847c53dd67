"""The cell-tag grammar, loaded from ``grammar.json``.

The JSON file is the single description shared with the JupyterLab extension, so the Python and
TypeScript sides cannot drift apart. This module only interprets it.
"""

from __future__ import annotations

import difflib
import json
import keyword
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

GRAMMAR_FILE = "grammar.json"
# Roles whose fitted estimators a step saves as MLflow models: the exporter writes the call, the
# runner starts MLflow early when a step to run has one of them.
MODEL_ROLES = ("training", "step")


@dataclass(frozen=True)
class TagSpec:
    tag: str
    role: str | None
    name: str  # "none", "optional" or "required": whether the tag takes ":NAME"
    kale: bool
    modifier: bool  # combines with a step tag on the same cell (metrics, prev)
    doc: str


@dataclass(frozen=True)
class EngineTagSpec:
    """A Kale 2.x tag that sets how an engine runs a step (``cache:``, ``limit:``, ...)."""

    prefix: str
    shape: str  # "value" (one value), "map" (KEY:VALUE entries) or "list" (several entries)
    pattern: re.Pattern[str]  # named groups: value; key and value; or the entry's fields
    syntax: str
    example: str
    doc: str

    @property
    def choices(self) -> list[str]:
        """The only valid spellings, for tags with a fixed set (``cache:enabled``...)."""
        options = [s.strip() for s in self.syntax.split("|")]
        return [] if any(o != o.lower() for o in options) else options


@dataclass(frozen=True)
class EngineTag:
    """One engine tag, parsed: ``limit:nvidia.com/gpu:1`` -> ``{"key": ..., "value": ...}``."""

    tag: str
    spec: EngineTagSpec
    fields: dict[str, str]

    @property
    def key(self) -> str:
        return self.spec.prefix


@dataclass(frozen=True)
class Grammar:
    name_pattern: re.Pattern[str]
    name_max_length: int
    roles: dict[str, dict[str, Any]]
    tags: dict[str, TagSpec]
    ignored_prefixes: tuple[str, ...]
    foreign_tags: frozenset[str]
    engine_tags: dict[str, EngineTagSpec]
    unsupported_tags: dict[str, tuple[str, str]]  # prefix -> (what, fix)

    @property
    def step_roles(self) -> tuple[str, ...]:
        return tuple(r for r, spec in self.roles.items() if spec["step"])

    def spellings(self) -> list[str]:
        """Every valid tag spelling, NAME forms written as ``tag:NAME``."""
        out: list[str] = []
        for spec in self.tags.values():
            if spec.name != "required":
                out.append(spec.tag)
            if spec.name != "none":
                out.append(f"{spec.tag}:NAME")
        return out


@dataclass(frozen=True)
class ParsedTag:
    tag: str  # as written
    spec: TagSpec
    name: str | None

    @property
    def role(self) -> str | None:
        return self.spec.role


class TagError(ValueError):
    def __init__(self, code: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.code, self.message, self.fix = code, message, fix


@cache
def load_grammar() -> Grammar:
    raw = json.loads(resources.files("nb2prod").joinpath(GRAMMAR_FILE).read_text("utf-8"))
    tags = {
        t["tag"]: TagSpec(
            tag=t["tag"],
            role=t["role"],
            name=t["name"],
            kale=bool(t.get("kale", False)),
            modifier=bool(t.get("modifier", False)),
            doc=t["doc"],
        )
        for t in raw["tags"]
    }
    engine = {
        e["prefix"]: EngineTagSpec(
            prefix=e["prefix"],
            shape=e["shape"],
            pattern=re.compile(e["pattern"]),
            syntax=e["syntax"],
            example=e["example"],
            doc=e["doc"],
        )
        for e in raw.get("engine_tags", [])
    }
    return Grammar(
        name_pattern=re.compile(raw["name_pattern"]),
        name_max_length=int(raw["name_max_length"]),
        roles={r["role"]: r for r in raw["roles"]},
        tags=tags,
        ignored_prefixes=tuple(raw["ignored_prefixes"]),
        foreign_tags=frozenset(raw["foreign_tags"]),
        engine_tags=engine,
        unsupported_tags={
            u["prefix"]: (u["doc"], u["fix"]) for u in raw.get("unsupported_tags", [])
        },
    )


def is_safe_name(name: str) -> bool:
    """Step and parameter-like names: lower-case identifiers that are not Python keywords."""
    g = load_grammar()
    return (
        bool(g.name_pattern.match(name))
        and len(name) <= g.name_max_length
        and not keyword.iskeyword(name)
    )


def make_safe_name(text: str, fallback: str = "pipeline") -> str:
    """Turn arbitrary text (a file name, a bad tag name) into the closest safe name."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_")
    name = re.sub(r"_+", "_", name)
    if not name:
        name = fallback
    if name[0].isdigit():
        name = f"{fallback}_{name}"
    name = name[: load_grammar().name_max_length].rstrip("_")
    if keyword.iskeyword(name):
        name += "_"
    return name


def _suggest_engine_tag(tag: str) -> str | None:
    """The valid engine tag closest to ``tag`` (``Cache:Disabled``, ``cache:disable``)."""
    g = load_grammar()
    base, sep, rest = tag.strip().partition(":")
    match = difflib.get_close_matches(base.lower(), list(g.engine_tags), n=1, cutoff=0.8)
    if not sep or not match:
        return None
    spec = g.engine_tags[match[0]]
    for candidate in (f"{spec.prefix}:{rest}", f"{spec.prefix}:{rest.lower()}"):
        if spec.pattern.match(candidate):
            return candidate
    close = difflib.get_close_matches(f"{spec.prefix}:{rest.lower()}", spec.choices, n=1)
    return close[0] if close else spec.example


def suggest_tag(tag: str) -> str | None:
    """The valid tag closest to an unknown one, keeping a ``:NAME`` suffix if it had one.

    Matching ignores case, so ``Preprocessing`` suggests ``preprocessing``.
    """
    g = load_grammar()
    engine = _suggest_engine_tag(tag)
    if engine is not None:
        return engine
    base, sep, rest = tag.strip().lower().partition(":")
    candidates = [s.tag for s in g.tags.values() if (s.name != "none") == bool(sep) or not sep]
    match = difflib.get_close_matches(base, candidates, n=1, cutoff=0.6)
    if not match:
        match = difflib.get_close_matches(tag.lower(), g.spellings(), n=1, cutoff=0.5)
        return match[0] if match else None
    spec = g.tags[match[0]]
    if sep and spec.name != "none":
        return f"{spec.tag}:{make_safe_name(rest, 'step') if rest else 'NAME'}"
    if spec.name == "required":
        return f"{spec.tag}:NAME"
    return spec.tag


def parse_engine_tag(tag: str) -> EngineTag | None:
    """Interpret a Kale 2.x engine tag. ``None`` means it is not one; a bad one raises."""
    g = load_grammar()
    base, sep, _ = tag.partition(":")
    spec = g.engine_tags.get(base)
    if spec is None:
        return None
    m = spec.pattern.match(tag) if sep else None
    if m is None:
        hint = _suggest_engine_tag(tag) if sep else None
        if spec.choices:
            forms = " or ".join(f"`{c}`" for c in spec.choices)
            fix = f"use `{hint or spec.example}` (the tag is {forms})."
        else:
            fix = f"write it as `{spec.syntax}`, e.g. `{spec.example}`."
        raise TagError("bad-engine-tag", f"tag `{tag}` is not a valid Kale `{base}:` tag.", fix)
    return EngineTag(tag, spec, {k: v for k, v in m.groupdict().items() if v is not None})


def parse_tag(tag: str) -> ParsedTag | None:
    """Interpret one tag. ``None`` means "not ours, ignore it"; bad tags raise :class:`TagError`."""
    g = load_grammar()
    if tag in g.foreign_tags:
        return None
    if parse_engine_tag(tag) is not None or tag.startswith(g.ignored_prefixes):
        return None  # no role: an engine setting (checked above) or another tool's tag
    base, sep, name = tag.partition(":")
    if sep and base in g.unsupported_tags:
        what, fix = g.unsupported_tags[base]
        raise TagError("unsupported-tag", f"tag `{tag}`: {what}", fix)
    spec = g.tags.get(base)
    if spec is None:
        hint = suggest_tag(tag)
        fix = f"use `{hint}`" if hint else "use one of: " + ", ".join(g.spellings())
        case = " (tags are lower-case)" if hint and hint == tag.lower() else ""
        raise TagError("unknown-tag", f"unknown tag `{tag}`{case}.", fix + ".")
    if not sep:
        if spec.name == "required":
            raise TagError(
                "unsafe-name",
                f"tag `{tag}` needs a step name.",
                f"write `{tag}:NAME` with NAME matching {g.name_pattern.pattern}.",
            )
        return ParsedTag(tag, spec, None)
    if spec.name == "none":
        raise TagError("unknown-tag", f"tag `{base}` takes no name (`{tag}`).", f"use `{base}`.")
    if not name and base in ("block", "step"):
        return ParsedTag(tag, spec, None)  # Kale writes an empty `block:` to mean "continue"
    if not is_safe_name(name):
        raise TagError(
            "unsafe-name",
            f"step name `{name}` in tag `{tag}` is not allowed: names are lower-case letters, "
            "digits and underscores, start with a letter or underscore, are at most "
            f"{g.name_max_length} characters and are not Python keywords.",
            f"use `{base}:{make_safe_name(name, 'step')}`.",
        )
    return ParsedTag(tag, spec, name)
