"""Formatting a step's import block the way isort (and ruff's ``I`` rules) expect it.

Generated modules must pass ``ruff check`` with its default rules, which include import sorting.
Sections: ``__future__``, standard library, third party, first party (modules found in the
project root), then relative imports; plain ``import`` lines before ``from`` lines; names ordered
constants, classes, then the rest; long lines wrapped in parentheses.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LINE_LENGTH = 88
_DIGITS = re.compile(r"(\d+)")


def _natural(text: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in _DIGITS.split(text))


def _module_key(module: str) -> tuple[object, ...]:
    return (_natural(module.lower()), _natural(module))


def _member_key(name: str) -> tuple[object, ...]:
    if len(name) > 1 and name.isupper():
        rank = 0  # CONSTANT
    elif name[:1].isupper():
        rank = 1  # Class
    else:
        rank = 2
    return (rank, _natural(name.lower()), _natural(name))


@dataclass(frozen=True)
class ImportLine:
    code: str  # one alias: ``import a.b as c`` or ``from m import n as o``
    comment: str = ""  # e.g. "noqa: F401"


def _section(module: str, level: int, first_party: frozenset[str]) -> int:
    if level:
        return 4
    top = module.split(".")[0]
    if top == "__future__":
        return 0
    if top in sys.stdlib_module_names:
        return 1
    if top in first_party:
        return 3
    return 2


def first_party_modules(root: Path) -> frozenset[str]:
    """Top-level modules ruff would call first party: those in the project root or ``src/``."""
    names: set[str] = set()
    for base in (root, root / "src"):
        if not base.is_dir():
            continue
        for entry in base.iterdir():
            if entry.suffix == ".py":
                names.add(entry.stem)
            elif entry.is_dir() and (entry / "__init__.py").is_file():
                names.add(entry.name)
    return frozenset(names)


def format_imports(lines: Iterable[ImportLine], first_party: frozenset[str] = frozenset()) -> str:
    plain: dict[int, list[tuple[tuple[object, ...], str]]] = {}
    froms: dict[int, dict[tuple[str, int], dict[str, str]]] = {}  # members: text -> comment
    aliased: dict[int, list[tuple[tuple[object, ...], str]]] = {}
    for line in dict.fromkeys(lines):
        node = ast.parse(line.code).body[0]
        suffix = f"  # {line.comment}" if line.comment else ""
        if isinstance(node, ast.Import):
            alias = node.names[0]
            section = _section(alias.name, 0, first_party)
            text = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
            key = (*_module_key(alias.name), alias.asname or "")
            plain.setdefault(section, []).append((key, text + suffix))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            alias = node.names[0]
            section = _section(module, node.level, first_party)
            target = "." * node.level + module
            if alias.asname:
                text = f"from {target} import {alias.name} as {alias.asname}"
                key = (*_module_key(target), *_member_key(alias.name))
                aliased.setdefault(section, []).append((key, text + suffix))
            else:
                members = froms.setdefault(section, {}).setdefault((target, node.level), {})
                members[alias.name] = line.comment or members.get(alias.name, "")
    blocks: list[str] = []
    for section in sorted({*plain, *froms, *aliased}):
        out = [text for _, text in sorted(plain.get(section, []))]
        statements: list[tuple[tuple[object, ...], int, str]] = []
        for (target, level), members in froms.get(section, {}).items():
            statements.append((_from_key(target, level), 0, _from_statement(target, members)))
        for _, text in aliased.get(section, []):
            module_key = _from_key(text.split()[1], 0)
            statements.append((module_key, 1, text))
        out += [text for _, _, text in sorted(statements, key=lambda s: (s[0], s[1], s[2]))]
        blocks.append("\n".join(out))
    return "\n\n".join(blocks)


def _from_key(target: str, level: int) -> tuple[object, ...]:
    return (-level, *_module_key(target.lstrip(".")))


def _from_statement(target: str, members: dict[str, str]) -> str:
    names = sorted(members, key=_member_key)
    commented = any(members[n] for n in names)
    single = f"from {target} import {', '.join(names)}"
    if len(names) == 1 and commented:
        return f"{single}  # {members[names[0]]}"
    if not commented and len(single) <= LINE_LENGTH:
        return single
    body = "\n".join(f"    {n},{'  # ' + members[n] if members[n] else ''}" for n in names)
    return f"from {target} import (\n{body}\n)"
