"""dvc.yaml's code dependencies match what each stage script really imports.

DVC reruns a stage only when one of its listed deps changed, so a fashiongen
module that a stage imports but dvc.yaml does not list would let `dvc repro`
skip a stage whose code changed. For every stage this computes the import
closure of its script within the ``fashiongen`` package (every import
statement anywhere in a module, lazy ones inside functions included) and
compares it with the ``fashiongen/...`` deps: a file dep must be in the
closure, a folder dep must cover at least one module of it, and every module
of the closure must be covered by a dep. Package ``__init__.py`` files that
hold only a docstring (and ``__version__``) are not code a stage runs.
"""

import ast
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers import REPO_ROOT

PACKAGE = "fashiongen"


def module_file(name: str, root: Path = REPO_ROOT) -> Path | None:
    """The file of module ``name`` (dotted) under ``root``, or None when it is not a fashiongen module."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    path = root.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = REPO_ROOT) -> set[Path]:
    """fashiongen module files that ``path`` imports (anywhere in it), including imported submodules."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path, root) if path.name == "__init__.py" else module_name(path, root).rpartition(".")[0]
    found: set[Path] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            names = [parent] + [f"{parent}.{alias.name}" for alias in node.names]
        for name in names:
            # `import a.b.c` runs a, a.b and a.b.c
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                file = module_file(".".join(parts[:i]), root)
                if file is not None:
                    found.add(file)
    return found


def is_trivial_init(path: Path) -> bool:
    """A package ``__init__.py`` with nothing but a docstring and ``__version__``."""
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text(encoding="utf-8")).body
    for node in body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__version__"]:
            continue
        return False
    return True


def import_closure(script: Path, root: Path = REPO_ROOT) -> set[str]:
    """Relative POSIX paths of the fashiongen modules ``script`` runs, directly or through others."""
    seen: set[Path] = set()
    todo = list(imported_modules(script, root))
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        todo.extend(imported_modules(file, root) - seen)
    return {file.relative_to(root).as_posix() for file in seen if not is_trivial_init(file)}


def stage_problems(stage: str, spec: dict, root: Path = REPO_ROOT) -> list[str]:
    script = root / spec["cmd"].split()[-1]
    closure = import_closure(script, root)
    deps = [d for d in spec.get("deps", []) if isinstance(d, str) and d.startswith(PACKAGE + "/")]
    problems = []
    for dep in deps:
        if (root / dep).is_dir():
            if not any(module.startswith(dep.rstrip("/") + "/") for module in closure):
                problems.append(f"{stage}: lists {dep}, but imports no module of it")
        elif dep not in closure:
            problems.append(f"{stage}: lists {dep}, which it no longer imports")
    for module in sorted(closure):
        if not any(module == dep or module.startswith(dep.rstrip("/") + "/") for dep in deps):
            problems.append(f"{stage}: imports {module}, which dvc.yaml does not list in its deps")
    if script.relative_to(root).as_posix() not in spec.get("deps", []):
        problems.append(f"{stage}: its own script {script.relative_to(root).as_posix()} is not a dep")
    return problems


STAGES = YAML(typ="safe").load(REPO_ROOT / "dvc.yaml")["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_runs_is_a_dvc_dependency(stage):
    assert stage_problems(stage, STAGES[stage]) == []


def test_the_check_fails_when_a_dep_is_removed_or_stale():
    spec = STAGES["train"]
    without_one = {**spec, "deps": [d for d in spec["deps"] if d != "fashiongen/config.py"]}
    assert "train: imports fashiongen/config.py, which dvc.yaml does not list in its deps" in stage_problems("train", without_one)
    stale = {**spec, "deps": [*spec["deps"], "fashiongen/report.py"]}
    assert stage_problems("train", stale) == ["train: lists fashiongen/report.py, which it no longer imports"]


def test_lazy_and_relative_imports_count(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('"""doc"""\n__version__ = "1"\n')
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("def f():\n    from . import b\n")
    (package / "sub" / "b.py").write_text("from fashiongen.c import thing\n")
    (package / "c.py").write_text("thing = 1\n")
    (tmp_path / "stage.py").write_text("def main():\n    import fashiongen.sub.a\n")
    assert import_closure(tmp_path / "stage.py", tmp_path) == {
        "fashiongen/sub/a.py", "fashiongen/sub/b.py", "fashiongen/c.py"
    }
