"""The tag grammar: one JSON description, parsed the same way everywhere."""

from __future__ import annotations

import json
import keyword
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nb2prod.grammar import (
    TagError,
    is_safe_name,
    load_grammar,
    make_safe_name,
    parse_engine_tag,
    parse_tag,
    suggest_tag,
)

GRAMMAR = json.loads((Path(__file__).resolve().parents[2] / "nb2prod" / "grammar.json").read_text())
NAME = re.compile(GRAMMAR["name_pattern"])
safe_names = st.from_regex(r"\A[a-z_][a-z0-9_]{0,30}\Z").filter(lambda n: not keyword.iskeyword(n))


def test_grammar_file_is_self_consistent() -> None:
    roles = {r["role"] for r in GRAMMAR["roles"]}
    for tag in GRAMMAR["tags"]:
        assert tag["role"] is None or tag["role"] in roles
        assert tag["name"] in ("none", "optional", "required")
    assert {"preprocessing", "training", "evaluation"} <= {
        r["role"] for r in GRAMMAR["roles"] if r["step"]
    }
    kale = {t["tag"] for t in GRAMMAR["tags"] if t.get("kale")}
    assert kale == {
        "step",
        "block",
        "prev",
        "imports",
        "functions",
        "pipeline-parameters",
        "pipeline-metrics",
    }


@pytest.mark.parametrize(
    ("tag", "role", "name"),
    [
        ("preprocessing", "preprocessing", None),
        ("training:xgb_v2", "training", "xgb_v2"),
        ("evaluation", "evaluation", None),
        ("parameters", "parameters", None),
        ("setup", "setup", None),
        ("metrics", "metrics", None),
        ("skip", "skip", None),
        ("block:load_data", "step", "load_data"),
        ("step:train", "step", "train"),
        ("imports", "setup", None),
        ("functions", "setup", None),
        ("pipeline-parameters", "parameters", None),
        ("pipeline-metrics", "metrics", None),
        ("prev:load_data", None, "load_data"),
    ],
)
def test_known_tags(tag: str, role: str | None, name: str | None) -> None:
    parsed = parse_tag(tag)
    assert parsed is not None and parsed.role == role and parsed.name == name


@pytest.mark.parametrize(
    "tag",
    [
        "hide-input",
        "remove-cell",
        "injected-parameters",
        "annotation:x:y",
        "limit:nvidia.com/gpu:1",
    ],
)
def test_other_tools_tags_are_ignored(tag: str) -> None:
    assert parse_tag(tag) is None


@pytest.mark.parametrize(
    ("tag", "suggestion"),
    [
        ("trainig", "training"),
        ("Training", "training"),
        ("preprocess", "preprocessing"),
        ("evalution:final", "evaluation:final"),
        ("param", "parameters"),
        ("metric", "metrics"),
        ("skipp", "skip"),
        ("blok:load", "block:load"),
        ("pipeline-parameter", "pipeline-parameters"),
    ],
)
def test_unknown_tags_suggest_the_closest(tag: str, suggestion: str) -> None:
    with pytest.raises(TagError) as info:
        parse_tag(tag)
    assert info.value.code == "unknown-tag"
    assert suggest_tag(tag) == suggestion
    assert f"`{suggestion}`" in info.value.fix


@given(safe_names)
def test_every_safe_name_is_accepted_in_every_named_tag(name: str) -> None:
    for base in ("preprocessing", "training", "evaluation", "step", "block", "prev"):
        parsed = parse_tag(f"{base}:{name}")
        assert parsed is not None and parsed.name == name


@given(st.text(min_size=1, max_size=40))
def test_any_name_is_either_accepted_safely_or_refused_with_a_safe_fix(name: str) -> None:
    tag = f"training:{name}"
    try:
        parsed = parse_tag(tag)
    except TagError as exc:
        assert exc.code in ("unsafe-name", "unknown-tag")
        suggested = exc.fix.split("`")[1]
        assert parse_tag(suggested) is not None  # the fix itself is valid
    else:
        assert parsed is not None and parsed.name is not None
        assert NAME.match(parsed.name) and is_safe_name(parsed.name)


@given(st.text(max_size=80))
def test_make_safe_name_always_gives_a_safe_name(text: str) -> None:
    assert is_safe_name(make_safe_name(text))


@given(st.text(max_size=30))
def test_parse_tag_never_crashes(tag: str) -> None:
    try:
        parse_tag(tag)
    except TagError as exc:
        assert exc.message and exc.fix


def test_keywords_and_long_names_are_unsafe() -> None:
    assert not is_safe_name("class")
    assert not is_safe_name("a" * (load_grammar().name_max_length + 1))
    assert not is_safe_name("9lives") and not is_safe_name("has-dash") and not is_safe_name("")


def test_engine_tags_in_the_grammar_file_are_consistent() -> None:
    prefixes = set(GRAMMAR["ignored_prefixes"])
    for spec in GRAMMAR["engine_tags"]:
        assert re.match(spec["pattern"], spec["example"]), spec
        # The JupyterLab side reads them as role-less tags, kept when a cell's role changes.
        assert f"{spec['prefix']}:" in prefixes
    assert {s["prefix"] for s in GRAMMAR["engine_tags"]} == {
        "cache",
        "image",
        "limit",
        "secret",
        "annotation",
        "label",
        "report",
    }


@pytest.mark.parametrize(
    ("tag", "key", "fields"),
    [
        ("cache:enabled", "cache", {"value": "enabled"}),
        ("cache:disabled", "cache", {"value": "disabled"}),
        ("report:disabled", "report", {"value": "disabled"}),
        ("image:gcr.io/proj/img@sha256:abc", "image", {"value": "gcr.io/proj/img@sha256:abc"}),
        ("limit:nvidia.com/gpu:2", "limit", {"key": "nvidia.com/gpu", "value": "2"}),
        ("limit:memory:4Gi", "limit", {"key": "memory", "value": "4Gi"}),
        (
            "secret:db-creds:pass.word:DB_PASSWORD",
            "secret",
            {"name": "db-creds", "key": "pass.word", "env": "DB_PASSWORD"},
        ),
        ("annotation:a.io/b:x:y z", "annotation", {"key": "a.io/b", "value": "x:y z"}),
        ("label:tier:", "label", {"key": "tier", "value": ""}),
    ],
)
def test_kale_engine_tags(tag: str, key: str, fields: dict[str, str]) -> None:
    parsed = parse_engine_tag(tag)
    assert parsed is not None and parsed.key == key and parsed.fields == fields
    assert parse_tag(tag) is None  # no role


@pytest.mark.parametrize(
    ("tag", "fix"),
    [
        ("cache:yes", "use `cache:enabled`"),
        ("cache:disable", "use `cache:disabled`"),
        ("report:Enabled", "use `report:enabled`"),
        ("cache", "use `cache:disabled`"),
        ("limit:4", "`limit:RESOURCE:AMOUNT`"),
        ("image:bad image", "`image:IMAGE`"),
        ("label:tier:a\nb", "`label:KEY:VALUE`"),
        ("secret:a:b", "`secret:SECRET:KEY:ENV_VAR`"),
    ],
)
def test_bad_engine_tags(tag: str, fix: str) -> None:
    for parse in (parse_engine_tag, parse_tag):
        with pytest.raises(TagError) as info:
            parse(tag)
        assert info.value.code == "bad-engine-tag" and fix in info.value.fix


def test_kale_notebook_tag_is_not_supported() -> None:
    with pytest.raises(TagError) as info:
        parse_tag("notebook:other")
    assert info.value.code == "unsupported-tag" and "not supported" in info.value.message


@pytest.mark.parametrize(
    ("tag", "suggestion"),
    [
        ("Preprocessing", "preprocessing"),
        ("PARAMETERS", "parameters"),
        ("Training:XGB", "training:xgb"),
        ("parameter", "parameters"),
        ("Cache:Disabled", "cache:disabled"),
        ("cahce:enabled", "cache:enabled"),
    ],
)
def test_suggestions_ignore_case(tag: str, suggestion: str) -> None:
    assert suggest_tag(tag) == suggestion
