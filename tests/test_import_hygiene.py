"""Imports inside functions are kept only where they keep ``import affseg`` light.

An import inside a function (a *deferred* import) earns its place in one of two ways: it
defers a module that the enclosing module does not load yet (torch, numba, a scipy or
skimage submodule, an affseg module that loads such modules), so that ``import affseg``
and ``affseg --help`` stay fast; or it breaks an import cycle. A deferred import of a
module that the enclosing module already loads at its top level only hides a dependency
and costs a lookup per call: it belongs at the top of the module.

The check is static. For each module of ``src/affseg`` it computes the *closure* of its
top-level imports: the affseg modules followed transitively through their own top-level
imports (``if TYPE_CHECKING:`` blocks skipped), the third-party modules by dotted name
(``skimage`` and ``skimage.measure`` are different modules, since importing a package
need not import its submodules), the standard library left out. A deferred import of X
in module M is redundant when the closure of X is inside the closure of M and does not
contain M (which would be a cycle). A deferred import of the standard library is always
redundant (it is cheap): import it at the top. :data:`ALLOWED` lists the exceptions, each
with its reason.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "affseg"

#: Deferred imports that stay although the check calls them redundant:
#: (file relative to the repository root, imported module) -> why.
ALLOWED: dict[tuple[str, str], str] = {
    ("src/affseg/batch/manifest.py", "fcntl"): (
        "POSIX only: imported where the run folder is locked, so that the module (and the "
        "rest of affseg) still imports on Windows"
    ),
}

#: Modules that neither ``import affseg`` nor ``affseg --help`` may load.
HEAVY = ("torch", "numba", "scipy", "skimage", "starlette")


@dataclass(frozen=True)
class Deferred:
    """One module imported inside a function.

    Attributes
    ----------
    path : str
        The file, relative to the repository root.
    line : int
        Line of the import statement.
    module : str
        The enclosing module (dotted name).
    imported : tuple of str
        The modules the statement loads (for ``from pkg import sub``: ``pkg`` and
        ``pkg.sub`` when ``sub`` is a module).
    """

    path: str
    line: int
    module: str
    imported: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.imported[-1]}"


def _module_name(path: Path) -> str:
    """Dotted name of a source file under ``src``."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _source(module: str) -> Path | None:
    """The file of an affseg module, or None when ``module`` is not one."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@cache
def _is_module(name: str) -> bool:
    """Whether ``name`` is an importable module or package (found without importing it)."""
    top, *rest = name.split(".")
    if top == PACKAGE:
        return _source(name) is not None
    spec = importlib.util.find_spec(top)  # a top-level name: finds, does not import
    if spec is None:
        return False
    dirs = [Path(d) for d in spec.submodule_search_locations or ()]
    for i, part in enumerate(rest):
        packages = [d / part for d in dirs if (d / part).is_dir()]
        if not packages:  # a plain module (.py, .so, ...) ends the dotted name, or nothing
            suffixes = importlib.machinery.all_suffixes()
            found = any((d / f"{part}{s}").is_file() for d in dirs for s in suffixes)
            return found and i == len(rest) - 1
        dirs = packages
    return True


def _package(module: str) -> str:
    """The package that relative imports in ``module`` start from."""
    source = _source(module)
    is_package = source is not None and source.name == "__init__.py"
    return module if is_package else module.rpartition(".")[0]


def _is_type_checking(node: ast.If) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    nodes: Iterable[ast.AST], in_function: bool = False
) -> Iterator[tuple[ast.stmt, bool]]:
    """Import statements in ``nodes`` that run, each with whether it is in a function."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, in_function
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from _imports(node.orelse, in_function)  # the body is for type checkers
        else:
            inner = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from _imports(ast.iter_child_nodes(node), in_function or inner)


def _loaded(stmt: ast.stmt, module: str) -> list[tuple[str, ...]]:
    """The modules an import statement in ``module`` loads, one tuple per movable unit.

    ``import a, b`` gives two units; ``from pkg import x, y`` gives one: ``pkg`` and those
    of ``pkg.x``, ``pkg.y`` that are modules.
    """
    if isinstance(stmt, ast.Import):
        return [(alias.name,) for alias in stmt.names]
    assert isinstance(stmt, ast.ImportFrom)
    base = stmt.module or ""
    if stmt.level:
        parts = _package(module).split(".")
        package = ".".join(parts[: len(parts) - stmt.level + 1])
        base = f"{package}.{base}" if base else package
    subs = tuple(f"{base}.{a.name}" for a in stmt.names if _is_module(f"{base}.{a.name}"))
    return [(base, *subs)]


def _parents(module: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c`` (importing a module imports its parents)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@cache
def _top_level(module: str) -> tuple[str, ...]:
    """Modules that an affseg module imports at its top level (empty for other modules)."""
    source = _source(module)
    if source is None:
        return ()
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return tuple(
        name
        for stmt, in_function in _imports([tree])
        if not in_function
        for unit in _loaded(stmt, module)
        for name in unit
    )


@cache
def _closure(module: str) -> frozenset[str]:
    """Non-stdlib modules loaded by importing ``module`` (affseg ones followed)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in _parents(todo.pop()):
            if name not in seen:
                seen.add(name)
                todo.extend(_top_level(name))
    return frozenset(m for m in seen if m.partition(".")[0] not in sys.stdlib_module_names)


def deferred_imports() -> Iterator[Deferred]:
    """Every movable unit of every import inside a function of ``src/affseg``."""
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(ROOT).as_posix()
        for stmt, in_function in _imports([tree]):
            if in_function:
                for unit in _loaded(stmt, module):
                    yield Deferred(rel, stmt.lineno, module, unit)


def is_redundant(imp: Deferred) -> bool:
    """Whether the enclosing module already loads everything ``imp`` loads (no cycle).

    Examples
    --------
    >>> is_redundant(Deferred("x.py", 1, "affseg.errors", ("json",)))  # stdlib: cheap
    True
    >>> is_redundant(Deferred("x.py", 1, "affseg.errors", ("torch",)))
    False
    """
    needed = frozenset().union(*(_closure(m) for m in imp.imported))
    cycle = any(imp.module in _closure(m) for m in imp.imported)
    return needed <= _closure(imp.module) and not cycle


def test_deferred_imports_keep_affseg_light() -> None:
    """No import inside a function loads only what its module has loaded already."""
    redundant = [
        str(imp)
        for imp in deferred_imports()
        if is_redundant(imp) and (imp.path, imp.imported[-1]) not in ALLOWED
    ]
    assert not redundant, (
        "imports inside functions of modules that load them already (move them to the "
        "top, or add them to ALLOWED with the reason):\n" + "\n".join(redundant)
    )


def test_allowed_entries_are_still_needed() -> None:
    """Every :data:`ALLOWED` entry names a deferred import the check would flag."""
    flagged = {(imp.path, imp.imported[-1]) for imp in deferred_imports() if is_redundant(imp)}
    stale = sorted(f"{path}: {module}" for path, module in ALLOWED.keys() - flagged)
    assert not stale, "remove from ALLOWED: " + ", ".join(stale)


def test_the_check_sees_submodules_of_third_party_packages() -> None:
    """``from scipy import ndimage`` loads ``scipy.ndimage``, not only ``scipy``."""
    stmt = ast.parse("from scipy import ndimage, pi").body[0]
    assert _loaded(stmt, "affseg.errors") == [("scipy", "scipy.ndimage")]
    assert "skimage.measure" not in _closure("skimage")


def test_import_affseg_loads_no_heavy_module() -> None:
    """``import affseg`` loads none of :data:`HEAVY` (``affseg --help``: tests/test_cli.py)."""
    code = f"import sys, affseg\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]", run.stdout[-300:]
