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

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers import REPO_ROOT

from fashiongen.source_code import PACKAGE
from fashiongen.source_code import import_closure as module_closure


def import_closure(script: Path, root: Path = REPO_ROOT) -> set[str]:
    """Relative POSIX paths of the fashiongen modules ``script`` runs, directly or through others."""
    return {file.relative_to(root).as_posix() for file in module_closure([script], root)}


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


GAN_MODULES = ("fashiongen/gan/training.py", "fashiongen/gan/trainer.py", "fashiongen/gan/losses.py",
               "fashiongen/models/factory.py", "fashiongen/models/dcgan.py", "fashiongen/models/resnet.py",
               "fashiongen/pipeline/train.py", "fashiongen/generation.py")


def covers(dep: str, module: str) -> bool:
    return module == dep or module.startswith(dep.rstrip("/") + "/")


@pytest.mark.parametrize("stage", ["train_encoder", "encode"])
def test_an_edit_of_the_gan_reruns_neither_encoder_stage(stage):
    """Issue 38 item 2: no dep of the encoder stages (a file, or a folder holding one) is a GAN module, so DVC
    does not rerun them for a GAN edit."""
    deps = [d for d in STAGES[stage]["deps"] if isinstance(d, str)]
    assert [(d, m) for d in deps for m in GAN_MODULES if covers(d, m)] == []
    assert covers("fashiongen/models", "fashiongen/models/dcgan.py")  # a folder dep would be caught
