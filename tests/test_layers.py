"""The package's layers import downward only (issue 38).

Read from the source (:mod:`fashiongen.source_code`), counting every import
statement that runs: those inside functions too, not those under
``if TYPE_CHECKING:``.

- No import circle anywhere in ``fashiongen/``: a circle held together by
  imports hidden inside functions is still a circle.
- ``data/``, ``models/`` and ``metrics/`` import nothing from the layers that use
  them: only each other and the shared modules below everything
  (:data:`SHARED`), which in turn import only each other.
- An import inside a function says why it is there (a comment on its line or the
  line above), outside ``cli.py``, whose commands import their work lazily so
  that ``fashiongen --help`` starts fast.
"""

from __future__ import annotations

from pathlib import Path

from fashiongen.source_code import ImportEdge, import_edges, is_trivial_init
from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "fashiongen"
LOWER = ("data", "models", "metrics")
# modules every layer may use, which themselves use only each other
SHARED = {
    "atomic", "clustering", "config", "device", "errors", "images", "model_files", "progress", "real_set",
    "runtime", "seeding", "source_code",
}
LAZY_BY_DESIGN = {"cli.py"}


def modules(root: Path = PACKAGE) -> list[Path]:
    return sorted(root.rglob("*.py"))


def running_edges(root: Path = PACKAGE) -> list[ImportEdge]:
    """Import edges that run, between two different modules, into a module with code."""
    return [edge for path in modules(root) for edge in import_edges(path, root.parent)
            if not edge.type_checking and edge.imported != edge.importer and not is_trivial_init(edge.imported)]


def relative(path: Path, root: Path = PACKAGE) -> str:
    return path.relative_to(root).as_posix()


def circles(edges: list[ImportEdge]) -> list[list[Path]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    graph: dict[Path, set[Path]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    found: list[list[Path]] = []

    def connect(node: Path) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def describe_circle(component: list[Path], edges: list[ImportEdge], root: Path = PACKAGE) -> str:
    inside = set(component)
    ties = sorted({f"{relative(e.importer, root)}:{e.line} -> {relative(e.imported, root)}"
                   for e in edges if e.importer in inside and e.imported in inside})
    return "; ".join(ties)


def layer_of(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def upward_imports(edges: list[ImportEdge], root: Path = PACKAGE) -> list[str]:
    problems = []
    for edge in edges:
        source, target = layer_of(edge.importer, root), layer_of(edge.imported, root)
        if source in LOWER and target not in LOWER and target not in SHARED:
            problems.append(f"{relative(edge.importer, root)}:{edge.line} imports {relative(edge.imported, root)}, "
                            f"a layer that uses {source}/")
        if source in SHARED and target not in SHARED:
            problems.append(f"{relative(edge.importer, root)}:{edge.line} (shared by every layer) imports "
                            f"{relative(edge.imported, root)}")
    return problems


def says_why(comment: str) -> bool:
    """A comment with words in it, not only a linter's marker (``noqa``, ``type: ignore``, ``pragma``)."""
    text = comment.strip()
    return bool(text) and not text.lower().startswith(("noqa", "type:", "pragma", "isort", "fmt:"))


def unexplained_lazy_imports(edges: list[ImportEdge], root: Path = PACKAGE) -> list[str]:
    problems = set()
    for edge in edges:
        if not edge.in_function or relative(edge.importer, root) in LAZY_BY_DESIGN:
            continue
        lines = edge.importer.read_text(encoding="utf-8").splitlines()
        said = says_why(lines[edge.line - 1].partition("#")[2]) or (
            lines[edge.line - 2].strip().startswith("#") and says_why(lines[edge.line - 2].strip()[1:]))
        if not said:
            problems.add(f"{relative(edge.importer, root)}:{edge.line} imports {relative(edge.imported, root)} inside "
                         "a function without saying why")
    return sorted(problems)


def test_no_import_circle_in_the_package():
    edges = running_edges()
    assert [describe_circle(component, edges) for component in circles(edges)] == []


def test_data_models_and_metrics_import_nothing_from_the_layers_above():
    assert upward_imports(running_edges()) == []


def test_imports_inside_functions_say_why():
    assert unexplained_lazy_imports(running_edges()) == []


def test_every_shared_module_exists():
    assert sorted(name for name in SHARED if not (PACKAGE / f"{name}.py").is_file()) == []


def test_the_checks_see_a_circle_through_a_function_an_upward_import_and_an_unexplained_lazy_one(tmp_path):
    package = tmp_path / "fashiongen"
    (package / "data").mkdir(parents=True)
    (package / "gan").mkdir()
    (package / "__init__.py").write_text('"""doc"""\n')
    (package / "data" / "__init__.py").write_text("")
    (package / "gan" / "__init__.py").write_text("")
    (package / "data" / "reader.py").write_text("def read():\n    from fashiongen.gan.kinds import KINDS  # noqa: F401\n")
    (package / "gan" / "kinds.py").write_text(
        "from typing import TYPE_CHECKING\nfrom fashiongen.data.reader import read\nKINDS = {}\n"
        "if TYPE_CHECKING:\n    from fashiongen.gan.hint import Hint\n")
    (package / "gan" / "hint.py").write_text("from fashiongen.gan.kinds import KINDS\nHint = int\n")
    edges = running_edges(package)
    assert [[relative(p, package) for p in component] for component in circles(edges)] == [
        ["data/reader.py", "gan/kinds.py"]]  # not hint.py: its import back runs only for type checkers
    assert describe_circle(circles(edges)[0], edges, package) == (
        "data/reader.py:2 -> gan/kinds.py; gan/kinds.py:2 -> data/reader.py")
    assert upward_imports(edges, package) == ["data/reader.py:2 imports gan/kinds.py, a layer that uses data/"]
    assert unexplained_lazy_imports(edges, package) == [
        "data/reader.py:2 imports gan/kinds.py inside a function without saying why"]
