"""FashionGen's own source as data: which modules a module runs, and a digest of what they do.

Two questions are answered from the files, without importing anything:

- :func:`import_closure`: the ``fashiongen`` modules a file runs, directly or
  through others. Every import statement anywhere in a module counts (those
  inside functions too), relative ones resolved; ``import a.b.c`` runs
  ``a``, ``a.b`` and ``a.b.c``. dvc.yaml's code deps are checked against it
  (tests/test_dvc_deps.py), and a training run's identity digests it.
- :func:`behaviour_digest`: a SHA-256 of what a set of modules does. Each
  file is parsed and its syntax tree dumped without positions and without
  docstrings, so comments, docstrings, blank lines and line breaks do not
  change the digest; any change to code does. The dump is Python's
  :func:`ast.dump`, whose format may differ between Python minor versions:
  a digest is compared only with one made by the same Python.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "fashiongen"


def module_file(name: str, root: Path) -> Path | None:
    """The file of module ``name`` (dotted) under ``root`` (the folder holding the package), or None when it is not
    a fashiongen module."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    path = root.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module in ``path`` (under ``root``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(node: ast.AST, package: str) -> list[str]:
    """The dotted names an import statement ``node`` may run (module, and module.name for ``from`` imports);
    ``package`` resolves relative imports. Empty for any other node."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            parent = ".".join(base + ([node.module] if node.module else []))
        else:
            parent = node.module or ""
        return [parent] + [f"{parent}.{alias.name}" for alias in node.names]
    return []


def containing_package(path: Path, root: Path) -> str:
    """The package a module's relative imports start from."""
    name = module_name(path, root)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


@dataclass(frozen=True)
class ImportEdge:
    """One fashiongen module file that an import statement in ``importer`` runs."""

    importer: Path
    imported: Path
    line: int
    in_function: bool  # the statement is inside a function (runs when it is called, not on import)
    type_checking: bool  # the statement is under ``if TYPE_CHECKING:`` (never runs)


class _ImportFinder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[ast.AST, bool, bool]] = []  # (statement, in a function, under TYPE_CHECKING)
        self.functions = 0
        self.type_checking = 0

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.functions += 1
        self.generic_visit(node)
        self.functions -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        guarded = isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" or (
            isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        self.type_checking += guarded
        for child in node.body:
            self.visit(child)
        self.type_checking -= guarded
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.AST) -> None:
        self.found.append((node, self.functions > 0, self.type_checking > 0))

    visit_ImportFrom = visit_Import


def import_edges(path: Path, root: Path) -> list[ImportEdge]:
    """Every fashiongen module file that an import statement of ``path`` runs (``import a.b.c`` runs ``a``,
    ``a.b`` and ``a.b.c``), one edge per statement and file, with where the statement is."""
    finder = _ImportFinder()
    finder.visit(ast.parse(path.read_text(encoding="utf-8")))
    package = containing_package(path, root) if path.is_relative_to(root) else ""
    edges: list[ImportEdge] = []
    for node, in_function, type_checking in finder.found:
        files: dict[Path, None] = {}
        for name in imported_names(node, package):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                file = module_file(".".join(parts[:i]), root)
                if file is not None:
                    files[file] = None
        edges += [ImportEdge(path, file, node.lineno, in_function, type_checking) for file in files]
    return edges


def imported_modules(path: Path, root: Path) -> set[Path]:
    """fashiongen module files that ``path`` imports (anywhere in it, ``TYPE_CHECKING`` blocks included),
    including the packages on the way."""
    return {edge.imported for edge in import_edges(path, root)}


def is_trivial_init(path: Path) -> bool:
    """A package ``__init__.py`` with nothing but a docstring and ``__version__``: no code a stage runs."""
    if path.name != "__init__.py":
        return False
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__version__"]:
            continue
        return False
    return True


def import_closure(start: list[Path], root: Path) -> set[Path]:
    """The fashiongen module files that the files ``start`` run, directly or through others (``start`` itself
    included where it is one); trivial package ``__init__`` files left out."""
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        todo.extend(imported_modules(file, root) - seen)
    return {file for file in seen if file.is_relative_to(root / PACKAGE) and not is_trivial_init(file)}


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def behaviour_digest(files: set[Path], root: Path) -> str:
    """SHA-256 (hex) over each file's path relative to ``root`` and its syntax tree less docstrings and positions
    (see the module doc). A :class:`SyntaxError` for a file that does not parse."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        tree = _without_docstrings(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(ast.dump(tree, annotate_fields=True, include_attributes=False).encode() + b"\0")
    return digest.hexdigest()
