"""Static analysis of single cells: what each statement defines, reads, mutates and deletes."""

from __future__ import annotations

import pytest

from nb2prod.plan.analysis import analyse_cell


def names(source: str) -> tuple[set[str], set[str], set[str], set[str]]:
    a = analyse_cell(source)
    assert a.syntax_error is None, a.syntax_error
    return a.writes, a.reads, a.mutates, a.deletes


def events(source: str) -> list[tuple[str, str]]:
    return [(e.kind, e.name) for s in analyse_cell(source).statements for e in s.events]


def test_read_before_write_in_order() -> None:
    assert events("x = x + 1") == [("read", "x"), ("write", "x")]
    assert events("y = 1\nz = y") == [("write", "y"), ("read", "y"), ("write", "z")]


@pytest.mark.parametrize(
    ("source", "mutated"),
    [
        ("df['a'] = 1", "df"),
        ("df.loc[mask, 'a'] = 0", "df"),
        ("obj.attr = 3", "obj"),
        ("obj.inner.attr = 3", "obj"),
        ("counts[k] += 1", "counts"),
        ("items.append(4)", "items"),
        ("model.fit(X, y)", "model"),
        ("df.drop(columns=['a'], inplace=True)", "df"),
        ("scaled = scaler.fit_transform(X)", "scaler"),
        ("del d['key']", "d"),
        ("del obj.attr", "obj"),
        ("cfg.update({'a': 1})", "cfg"),
        ("model.fit(X, y).score(X, y)", "model"),
    ],
)
def test_mutations(source: str, mutated: str) -> None:
    _, _, mutates, _ = names(source)
    assert mutated in mutates


def test_pure_method_call_in_expression_is_not_a_mutation() -> None:
    writes, reads, mutates, _ = names("head = df.head()\nn = len(df.columns)")
    assert mutates == set()
    assert {"df", "len"} <= reads and writes == {"head", "n"}


def test_augmented_assignment_reads_then_writes() -> None:
    assert events("total += 1") == [("read", "total"), ("write", "total")]


def test_aliasing_is_recorded() -> None:
    [stmt] = analyse_cell("b = a").statements
    [read, write] = stmt.events
    assert (read.kind, read.name) == ("read", "a")
    assert (write.kind, write.name, write.alias_of) == ("write", "b", "a")


def test_comprehension_targets_are_private_but_walrus_leaks() -> None:
    writes, reads, _, _ = names("squares = [i * k for i in range(n) if (last := i) > 0]")
    assert "i" not in writes and "i" not in reads
    assert {"k", "n", "range"} <= reads
    assert writes == {"squares", "last"}


def test_nested_comprehension_and_dict_comprehension() -> None:
    writes, reads, _, _ = names("m = {k: [v * w for w in ws] for k, v in pairs.items()}")
    assert writes == {"m"}
    assert reads >= {"ws", "pairs"} and not reads & {"k", "v", "w"}


def test_del_deletes() -> None:
    _, _, _, deletes = names("del x, y")
    assert deletes == {"x", "y"}


def test_global_in_function_is_recorded_as_global_write() -> None:
    [stmt] = analyse_cell(
        "def bump():\n    global counter\n    counter = counter + step\n"
    ).statements
    [define] = stmt.events
    assert define.kind == "define" and define.name == "bump"
    assert define.global_writes == {"counter"}
    assert "step" in define.needs


def test_function_body_reads_are_deferred_needs() -> None:
    [stmt] = analyse_cell(
        "def f(a, b=default):\n    local = a + offset\n    return np.sum(local)\n"
    ).statements
    kinds = [(e.kind, e.name) for e in stmt.events]
    assert kinds == [("read", "default"), ("define", "f")]
    assert stmt.events[-1].needs == {"offset", "np"}
    assert stmt.needs == {"default", "offset", "np"}


def test_tuple_and_star_targets() -> None:
    writes, reads, _, _ = names("a, (b, *rest) = values\nfirst, *_ = rest")
    assert writes == {"a", "b", "rest", "first", "_"}
    assert reads == {"values", "rest"}


def test_with_for_except_targets() -> None:
    src = (
        "with open(path) as fh, lock:\n    text = fh.read()\n"
        "for i, (k, v) in enumerate(pairs):\n    acc = i\n"
        "try:\n    risky()\nexcept ValueError as err:\n    message = str(err)\n"
    )
    writes, reads, _, deletes = names(src)
    assert {"fh", "text", "i", "k", "v", "acc", "message"} <= writes
    assert {"path", "lock", "pairs", "risky", "ValueError"} <= reads
    assert "err" in deletes  # Python unbinds the handler's name afterwards


def test_class_body_reads_are_needs() -> None:
    [stmt] = analyse_cell(
        "class Model(Base, metaclass=Meta):\n    scale = factor\n"
        "    def predict(self, x):\n        return x * self.scale + bias\n"
    ).statements
    assert stmt.kind == "def" and stmt.binds == ("Model",)
    assert [e.name for e in stmt.events if e.kind == "read"] == ["Base", "Meta"]
    assert stmt.events[-1].needs == {"factor", "bias"}


def test_imports_define_hoistable_names() -> None:
    a = analyse_cell("import numpy as np, os.path\nfrom sklearn.metrics import f1_score as f1\n")
    defines = [(e.name, e.code, e.is_import) for s in a.statements for e in s.events]
    assert defines == [
        ("np", "import numpy as np", True),
        ("os", "import os.path", True),
        ("f1", "from sklearn.metrics import f1_score as f1", True),
    ]


def test_star_import_flagged() -> None:
    [stmt] = analyse_cell("from math import *").statements
    assert stmt.star_import and stmt.binds == ()


def test_line_magic_time_is_looked_through() -> None:
    writes, reads, mutates, _ = names("%time model = clf.fit(X, y)")
    assert writes == {"model"} and {"clf", "X", "y"} <= reads and mutates == {"clf"}


def test_cell_magic_time_body_is_analysed() -> None:
    writes, reads, _, _ = names("%%time\nimport numpy as np\nresult = np.sqrt(values)\n")
    assert writes == {"np", "result"} and "values" in reads


def test_capture_magic_binds_its_variable() -> None:
    writes, _, _, _ = names("%%capture captured\nx = 1\n")
    assert writes == {"x", "captured"}


def test_shell_and_other_magics_are_not_fatal() -> None:
    writes, reads, _, _ = names("!pip list\n%matplotlib inline\nfiles = !ls\nx = len(files)")
    assert writes == {"files", "x"} and "files" in reads


def test_non_python_cell_magic_has_no_names() -> None:
    a = analyse_cell("%%bash\necho $HOME > out.txt\n")
    assert not a.python and a.statements == [] and a.syntax_error is None


def test_run_magic_is_reported_as_opaque() -> None:
    assert analyse_cell("%run helpers.py").unknown_magics == ["run"]


def test_syntax_error_reported_not_raised() -> None:
    a = analyse_cell("x = (1,\ny = 2")
    assert a.syntax_error and a.syntax_line is not None


def test_match_statement_captures() -> None:
    writes, reads, _, _ = names(
        "match point:\n    case {'x': px, **others}:\n        found = px\n"
        "    case [first, *tail]:\n        found = first\n"
    )
    assert {"px", "others", "first", "tail", "found"} <= writes and "point" in reads


def test_lambda_free_names_are_read() -> None:
    writes, reads, _, _ = names("key = lambda row: row[column] * weight")
    assert writes == {"key"} and {"column", "weight"} <= reads and "row" not in reads


def test_statement_text_keeps_original_lines_with_magics() -> None:
    a = analyse_cell("%load_ext autoreload\n# helper\ndef f():\n    return 1\n")
    assert a.lines_match_source
    assert a.statements[-1].source == "def f():\n    return 1"


def test_display_style_calls_are_not_mutations() -> None:
    _, reads, mutates, _ = names("df.head()\ndf.info()\nmodel.score(X, y)\ndf.to_csv('out.csv')")
    assert mutates == set() and {"df", "model", "X", "y"} <= reads
    _, _, mutates, _ = names("df.sort_values('a', inplace=True)")
    assert mutates == {"df"}
