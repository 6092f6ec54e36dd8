"""Docstring policy: every public function and class of ``src/affseg`` has an Examples
section that runs (the examples themselves run as doctests, ``--doctest-modules``).

Names that do not have one yet are listed in ``tests/docstring_baseline.txt`` (one
``module.name`` a line); the list may only shrink: a new public name needs its Examples,
and a listed name that gains Examples must leave the list.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "affseg"
BASELINE = Path(__file__).with_name("docstring_baseline.txt")


def public_names_without_examples() -> set[str]:
    """``module.name`` of every top-level public def/class whose docstring has no ``>>>``."""
    missing = set()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if any(p.startswith("_") for p in parts[1:]):
            continue
        module = ".".join(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                doc = ast.get_docstring(node) or ""
                if ">>>" not in doc:
                    missing.add(f"{module}.{node.name}")
    return missing


def baseline() -> set[str]:
    lines = BASELINE.read_text(encoding="utf-8").splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}


def test_new_public_names_have_examples():
    new = sorted(public_names_without_examples() - baseline())
    assert not new, "public names without an Examples section: " + ", ".join(new)


def test_baseline_only_shrinks():
    stale = sorted(baseline() - public_names_without_examples())
    assert not stale, "remove from tests/docstring_baseline.txt: " + ", ".join(stale)
