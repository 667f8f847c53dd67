"""Static analysis of one code cell: which names it defines, reads, mutates and deletes.

IPython syntax (line and cell magics, ``!shell``) is first turned into Python by IPython's own
input transformer. Magics that execute Python (``%time``, ``%%capture``...) are looked through,
so ``%time model = fit()`` still defines ``model``.

The result is an ordered list of top-level statements, each with the ordered name events that the
planner replays in notebook order.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, Literal

EventKind = Literal["read", "write", "mutate", "delete", "define"]

# Magics whose argument or body is Python run in the user namespace.
# (%timeit runs its statement in a private namespace, so nothing it assigns is kept.)
EXEC_LINE_MAGICS = frozenset({"time", "prun"})
EXEC_CELL_MAGICS = frozenset({"time", "prun", "capture"})
# Method names that change their receiver wherever they appear, even inside an expression.
MUTATING_METHODS = frozenset(
    {
        "fit",
        "partial_fit",
        "fit_transform",
        "fit_predict",
        "fit_resample",
        "set_params",
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "clear",
        "update",
        "add",
        "discard",
        "setdefault",
        "popitem",
        "sort",
        "reverse",
        "resize",
        "fill",
        "put",
        "itemset",
        "setflags",
        "rename_axis",
        "train",
        "compile",
        "load_state_dict",
        "step",
    }
)
# Methods that only look at their receiver: calling one as a statement (``df.head()``, a
# notebook's way to display) is not taken as a change to ``df``.
PURE_METHODS = frozenset(
    {
        "head",
        "tail",
        "describe",
        "info",
        "sample",
        "plot",
        "hist",
        "boxplot",
        "show",
        "value_counts",
        "unique",
        "nunique",
        "isna",
        "isnull",
        "notna",
        "notnull",
        "sum",
        "mean",
        "median",
        "std",
        "var",
        "min",
        "max",
        "count",
        "corr",
        "cov",
        "agg",
        "to_csv",
        "to_parquet",
        "to_json",
        "to_excel",
        "to_pickle",
        "to_string",
        "to_dict",
        "to_numpy",
        "to_list",
        "tolist",
        "savefig",
        "score",
        "predict",
        "predict_proba",
        "decision_function",
        "transform",
        "get_params",
        "copy",
        "items",
        "keys",
        "values",
        "get",
        "format",
        "round",
        "any",
        "all",
        "argmax",
        "argmin",
        "memory_usage",
        "dtypes",
        "groupby",
        "pivot_table",
        "query",
        "filter",
        "select_dtypes",
        "nlargest",
        "nsmallest",
        "sort_values",
        "sort_index",
        "reset_index",
        "set_index",
        "drop",
        "dropna",
        "fillna",
        "rename",
        "astype",
        "merge",
        "join",
        "apply",
        "map",
        "style",
        "print",
        "summary",
    }
)
IPYTHON_NAMES = frozenset({"get_ipython", "display", "In", "Out", "exit", "quit", "_", "__", "___"})
BUILTIN_NAMES = frozenset(dir(builtins)) | {"__name__", "__doc__", "__builtins__", "__spec__"}


@dataclass(frozen=True)
class Event:
    kind: EventKind
    name: str
    # For "define" (def/class): free names the body reads when it runs, and globals it assigns.
    needs: frozenset[str] = frozenset()
    global_writes: frozenset[str] = frozenset()
    alias_of: str | None = None  # for "write": ``a = b`` makes a another name for b's object
    # For "define": code that re-creates the binding in another step (an import or a def).
    code: str | None = None
    is_import: bool = False
    noqa: bool = False  # an import the user marked ``# noqa``: kept even though nothing reads it


@dataclass
class Statement:
    kind: Literal["import", "def", "other"]
    first_line: int  # 1-based, in the cell's original source
    last_line: int
    source: str  # the statement's own text, for hoisting into other steps
    binds: tuple[str, ...]
    events: list[Event]
    star_import: bool = False
    owns_lines: bool = True  # False when it shares a line with another statement (``a; b``)

    @property
    def needs(self) -> frozenset[str]:
        """Every name the statement may read, including deferred reads of a def/class body."""
        out: set[str] = set()
        for e in self.events:
            if e.kind in ("read", "mutate"):
                out.add(e.name)
            elif e.kind == "define":
                out |= e.needs
        return frozenset(out - set(self.binds))


@dataclass
class CellAnalysis:
    statements: list[Statement] = field(default_factory=list)
    syntax_error: str | None = None
    syntax_line: int | None = None
    unknown_magics: list[str] = field(default_factory=list)  # e.g. %run: defines unknown names
    python: bool = True  # False for %%bash, %%html... cells: nothing to analyse
    # True when statement line numbers are those of the original source (no cell magic).
    lines_match_source: bool = True
    time_magic: bool = False  # the cell starts with %%time (dropped from exported code)
    tree: ast.Module | None = field(default=None, repr=False)  # the parsed cell, for later passes

    @property
    def reads(self) -> set[str]:
        return {e.name for s in self.statements for e in s.events if e.kind == "read"}

    @property
    def writes(self) -> set[str]:
        return {n for s in self.statements for n in s.binds}

    @property
    def mutates(self) -> set[str]:
        return {e.name for s in self.statements for e in s.events if e.kind == "mutate"}

    @property
    def deletes(self) -> set[str]:
        return {e.name for s in self.statements for e in s.events if e.kind == "delete"}


@cache
def _transformer() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def _ipython_call(node: ast.AST) -> tuple[str, list[ast.expr]] | None:
    """``get_ipython().METHOD(args)`` -> (METHOD, args), as IPython's transformer writes magics."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Call)
        and isinstance(node.func.value.func, ast.Name)
        and node.func.value.func.id == "get_ipython"
    ):
        return node.func.attr, list(node.args)
    return None


def _const_str(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _root_name(node: ast.expr) -> str | None:
    """The variable at the bottom of ``x.a[b].c(d).e`` chains."""
    while True:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            return None


def _bound_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _bound_names(elt)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []


def _function_scope(node: ast.AST) -> tuple[frozenset[str], frozenset[str]]:
    """Free names read by a function/class/lambda body, and the globals it assigns.

    Approximation: a name bound anywhere inside is local everywhere inside (true for Python
    functions, close enough for nested scopes), unless declared ``global``.
    """
    loads: set[str] = set()
    binds: set[str] = set()
    declared_global: set[str] = set()
    args = getattr(node, "args", None)
    if isinstance(args, ast.arguments):
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                binds.add(a.arg)
    body = getattr(node, "body", [])
    todo: list[ast.AST] = list(body) if isinstance(body, list) else [body]
    if isinstance(node, ast.ClassDef):
        todo = list(node.body)
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Global):
            declared_global.update(n.names)
        elif isinstance(n, ast.Name):
            (loads if isinstance(n.ctx, ast.Load) else binds).add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            binds.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for alias in n.names:
                binds.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            binds.add(n.name)
        elif isinstance(n, ast.arg):
            binds.add(n.arg)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            binds.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            binds.add(n.rest)
        todo.extend(ast.iter_child_nodes(n))
    global_writes = frozenset(binds & declared_global)
    free = (loads - (binds - declared_global)) | set()
    return frozenset(free), global_writes


class _EventVisitor(ast.NodeVisitor):
    """Collects name events of one top-level statement in evaluation order."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.unknown_magics: list[str] = []

    def emit(self, kind: EventKind, name: str, **kw: object) -> None:
        self.events.append(Event(kind, name, **kw))  # type: ignore[arg-type]

    # --- bindings -------------------------------------------------------------------------
    def bind_target(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.emit("write", target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.bind_target(elt)
        elif isinstance(target, ast.Starred):
            self.bind_target(target.value)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit_mutation_target(target)

    def visit_mutation_target(self, target: ast.Attribute | ast.Subscript) -> None:
        # x.a = ..., x[i] = ...: evaluate the parts, then x is changed in place.
        if isinstance(target, ast.Subscript):
            self.visit(target.slice)
        inner = target.value
        while isinstance(inner, (ast.Attribute, ast.Subscript)):
            if isinstance(inner, ast.Subscript):
                self.visit(inner.slice)
            inner = inner.value
        if isinstance(inner, ast.Name):
            self.emit("mutate", inner.id)
        else:
            self.visit(inner)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name) and isinstance(node.value, ast.Name):
                self.emit("write", target.id, alias_of=node.value.id)
            else:
                self.bind_target(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.emit("read", node.target.id)
            self.emit("write", node.target.id)
        else:
            assert isinstance(node.target, (ast.Attribute, ast.Subscript))
            self.visit_mutation_target(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self.bind_target(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.emit("write", node.target.id)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            for t in target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]:
                if isinstance(t, ast.Name):
                    self.emit("delete", t.id)
                elif isinstance(t, (ast.Attribute, ast.Subscript)):
                    self.visit_mutation_target(t)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.bind_target(node.target)
        for stmt in [*node.body, *node.orelse]:
            self.visit(stmt)

    visit_AsyncFor = visit_For  # noqa: N815

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.bind_target(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With  # noqa: N815

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.emit("write", node.name)
        for stmt in node.body:
            self.visit(stmt)
        if node.name:
            self.emit("delete", node.name)  # Python unbinds the name after the handler

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            code = ast.unparse(ast.Import(names=[alias]))
            self.emit("define", alias.asname or alias.name.split(".")[0], code=code, is_import=True)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                code = ast.unparse(
                    ast.ImportFrom(module=node.module, names=[alias], level=node.level)
                )
                self.emit("define", alias.asname or alias.name, code=code, is_import=True)

    def visit_Global(self, node: ast.Global) -> None:
        pass  # at top level ``global`` changes nothing

    # --- pattern matching -------------------------------------------------------------------
    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.emit("write", node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.emit("write", node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        for key in node.keys:
            self.visit(key)
        for pattern in node.patterns:
            self.visit(pattern)
        if node.rest:
            self.emit("write", node.rest)

    # --- deferred scopes --------------------------------------------------------------------
    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        if isinstance(node, ast.ClassDef):
            for base in [*node.bases, *(k.value for k in node.keywords)]:
                self.visit(base)
        annotated: set[str] = set()
        if not isinstance(node, ast.ClassDef):
            for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
                self.visit(default)
            # Annotations are evaluated when the def runs, so wherever the def is copied the
            # names they use must exist too (`raw: pd.DataFrame` needs `pd`).
            annotations = [a.annotation for a in _every_arg(node.args) if a.annotation]
            if node.returns is not None:
                annotations.append(node.returns)
            for annotation in annotations:
                self.visit(annotation)
                annotated |= {
                    n.id
                    for n in ast.walk(annotation)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
                }
        free, global_writes = _function_scope(node)
        self.emit(
            "define",
            node.name,
            needs=(free | annotated) - {node.name},
            global_writes=global_writes,
            code=ast.unparse(node),
        )

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition  # noqa: N815

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(default)
        free, _ = _function_scope(node)
        for name in sorted(free):
            self.emit("read", name)

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        local: set[str] = set()
        for i, gen in enumerate(node.generators):
            # The first iterable runs in the enclosing scope; the rest see the loop variables.
            self._visit_in_comprehension(gen.iter, local if i else set())
            local.update(_bound_names(gen.target))
            for cond in gen.ifs:
                self._visit_in_comprehension(cond, local)
        elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for elt in elts:
            self._visit_in_comprehension(elt, local)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension  # noqa: N815

    def _visit_in_comprehension(self, node: ast.expr, local: set[str]) -> None:
        inner = _EventVisitor()
        inner.visit(node)
        for e in inner.events:
            # Loop variables are private to the comprehension; a walrus binds outside it.
            if e.name in local and e.kind != "write":
                continue
            self.events.append(e)

    # --- reads and calls --------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.emit("read", node.id)
        elif isinstance(node.ctx, ast.Store):
            self.emit("write", node.id)
        else:
            self.emit("delete", node.id)

    def visit_Call(self, node: ast.Call) -> None:
        magic = _ipython_call(node)
        if magic is not None:
            self._visit_magic(*magic)
            return
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute):
            root = _root_name(node.func.value)
            inplace = any(
                k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords
            )
            if root is not None and (node.func.attr in MUTATING_METHODS or inplace):
                self.emit("mutate", root)

    def visit_Expr(self, node: ast.Expr) -> None:
        self.visit(node.value)
        # A method call whose result is thrown away is called for its effect on the receiver.
        value = node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            if _ipython_call(value) is None and value.func.attr not in PURE_METHODS:
                root = _root_name(value.func.value)
                if root is not None:
                    self.emit("mutate", root)

    def _visit_magic(self, method: str, args: list[ast.expr]) -> None:
        name = _const_str(args[0]) if args else None
        if method == "run_line_magic" and name in EXEC_LINE_MAGICS and len(args) > 1:
            code = _const_str(args[1])
            if code is not None:
                self._visit_code(code)
        elif method == "run_cell_magic" and name in EXEC_CELL_MAGICS and len(args) > 2:
            body = _const_str(args[2])
            line = _const_str(args[1]) or ""
            if body is not None:
                self._visit_code(body)
            if name == "capture" and line.split() and line.split()[-1].isidentifier():
                self.emit("write", line.split()[-1])
        elif method in ("run_line_magic", "run_cell_magic") and name in ("run", "store"):
            self.unknown_magics.append(str(name))

    def _visit_code(self, code: str) -> None:
        try:
            tree = ast.parse(_to_python(code))
        except SyntaxError:
            return
        for stmt in tree.body:
            self.visit(stmt)


def _to_python(source: str) -> str:
    """Plain Python for ``source``, turning IPython syntax into calls only when needed."""
    try:
        ast.parse(source)
        return source
    except SyntaxError:
        return str(_transformer().transform_cell(source))


def _kind(node: ast.stmt) -> Literal["import", "def", "other"]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "import"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return "def"
    return "other"


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def analyse_cell(source: str) -> CellAnalysis:
    """Analyse a code cell's source. Never raises: syntax errors are reported in the result."""
    result = CellAnalysis()
    stripped = source.lstrip()
    if stripped.startswith("%%"):
        magic = stripped[2:].split(None, 1)[0] if stripped[2:].strip() else ""
        if magic == "time":
            # %%time only times its body: analyse the body, keeping the cell's line numbers.
            offset = len(source[: len(source) - len(stripped)].splitlines()) + 1
            body = stripped.split("\n", 1)[1] if "\n" in stripped else ""
            inner = analyse_cell(body)
            for stmt in inner.statements:
                stmt.first_line += offset
                stmt.last_line += offset
            if inner.syntax_line is not None:
                inner.syntax_line += offset
            inner.time_magic = True
            return inner
        if magic not in EXEC_CELL_MAGICS:
            result.python = False  # %%bash, %%html, %%writefile...: no Python names
            return result
    python = _to_python(source)
    try:
        tree = ast.parse(python)
    except SyntaxError as exc:
        result.syntax_error = exc.msg
        result.syntax_line = exc.lineno
        return result
    # Line magics keep IPython's line numbering, so statement text can come from the original.
    original_lines = source.splitlines()
    same_lines = python is source or len(python.splitlines()) == len(original_lines)
    text_lines = original_lines if same_lines else python.splitlines()
    result.lines_match_source = same_lines
    result.tree = tree
    line_counts: dict[int, int] = {}
    for node in tree.body:
        for ln in range(_first_line(node), (node.end_lineno or node.lineno) + 1):
            line_counts[ln] = line_counts.get(ln, 0) + 1
    for node in tree.body:
        visitor = _EventVisitor()
        visitor.visit(node)
        first, last = _first_line(node), node.end_lineno or node.lineno
        owns = all(line_counts[ln] == 1 for ln in range(first, last + 1))
        if owns:
            text = "\n".join(text_lines[first - 1 : last])
        else:
            text = ast.get_source_segment(python, node) or ast.unparse(node)
        binds = tuple(
            dict.fromkeys(e.name for e in visitor.events if e.kind in ("write", "define"))
        )
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # Keep the user's own text (comments, layout) for a top-level definition.
            visitor.events[-1] = replace(visitor.events[-1], code=text)
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and "noqa" in text:
            # `import x  # noqa: F401`: the user says the import is there for its side effect.
            visitor.events = [replace(e, noqa=True) for e in visitor.events]
        result.statements.append(
            Statement(
                kind=_kind(node),
                first_line=first,
                last_line=last,
                source=text,
                binds=binds,
                events=visitor.events,
                star_import=isinstance(node, ast.ImportFrom)
                and any(a.name == "*" for a in node.names),
                owns_lines=owns,
            )
        )
        result.unknown_magics.extend(visitor.unknown_magics)
    return result


def literal_names_in_print(statement: Statement) -> list[str]:
    """Names printed by a Kale ``pipeline-metrics`` line such as ``print(accuracy)``."""
    tree = ast.parse(statement.source) if statement.owns_lines else None
    if tree is None or len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return []
    call = tree.body[0].value
    if isinstance(call, ast.Name):
        return [call.id]
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print":
        return [a.id for a in call.args if isinstance(a, ast.Name)]
    return []


# Modules imported for what importing them does, not for a name: they register DataFrame
# accessors (``df.hvplot``, ``df.swifter``, ``df.profile_report``...) or TensorFlow ops that a
# saved model needs. A submodule of one counts too.
SIDE_EFFECT_MODULES = frozenset(
    {
        "hvplot.pandas",
        "hvplot.polars",
        "hvplot.xarray",
        "hvplot.dask",
        "pandas_profiling",
        "ydata_profiling",
        "swifter",
        "janitor",
        "pandas_ta",
        "pint_pandas",
        "tensorflow_addons",
        "tensorflow_decision_forests",
        "tensorflow_io",
        "tensorflow_text",
    }
)


def import_for_side_effect(code: str, noqa: bool = False) -> bool:
    """Whether an import whose name nothing reads should still run (``code`` is one alias).

    Kept: imports the user marked ``# noqa``; sklearn-style ``enable_*`` modules; modules known
    to register something on import; and a plain ``import pkg`` of a third-party package, the
    usual way to load a plugin. Dropped: an unused ``from m import Name`` or ``import m as
    alias``, and plain imports of the standard library, which only bind a name.
    """
    if noqa:
        return True
    try:
        node = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return False
    if isinstance(node, ast.ImportFrom):
        paths = [f"{node.module or ''}.{a.name}".lstrip(".") for a in node.names]
    elif isinstance(node, ast.Import):
        paths = [a.name for a in node.names]
    else:
        return False
    for path in paths:
        parts = path.split(".")
        if any(p.startswith("enable_") for p in parts):
            return True
        if any(".".join(parts[:n]) in SIDE_EFFECT_MODULES for n in range(1, len(parts) + 1)):
            return True
    if isinstance(node, ast.Import) and not any(a.asname for a in node.names):
        import sys

        return all(p.split(".")[0] not in sys.stdlib_module_names for p in paths)
    return False


def _every_arg(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]
