"""What a DVC stage read, held still while it runs: its params and dependencies as dvc.yaml lists them.

DVC records a stage's params and dependencies in dvc.lock *after* the stage
ends, as they are then. A params.yaml edited while a stage runs (by hand, or
by a second ``dvc exp run -S ...``, which writes params.yaml before DVC's lock
refuses it) would be recorded beside outputs made with the old values, and
``dvc status`` would call them up to date. So a stage takes a
:class:`Snapshot` of what it reads when it starts, and before each output is
replaced (:func:`fashiongen.atomic.checked_before_publishing`) it checks that
nothing changed; if something did, it fails with :class:`InputsChanged`, which
names the change and leaves every output as it was.

Files are compared by size and modification time (nanoseconds), folders by
those of every file under them that DVC hashes (what ``.dvcignore`` names,
such as the ``__pycache__`` folders Python writes while a stage imports its
code, is skipped as DVC skips it): cheap enough to run before every write (a
folder of 100,000 photos takes about half a second), and any edit, copy or
checkout changes them.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fashiongen.config import read_yaml
from fashiongen.errors import ConfigError, FashionGenError

_INTERPOLATION = re.compile(r"\$\{\s*([\w.-]+)\s*\}")
_MISSING = "(absent)"


class InputsChanged(FashionGenError):
    """A stage's params or dependencies changed while it ran; it published nothing."""


@dataclass(frozen=True)
class StageInputs:
    """A stage's params keys (in ``params_file``) and dependency paths, from dvc.yaml."""

    stage: str
    params_file: Path
    keys: tuple[str, ...]
    deps: tuple[str, ...]
    ignore: tuple[str, ...] = ()  # .dvcignore's patterns

    @classmethod
    def of(cls, stage: str, dvc_yaml: Path = Path("dvc.yaml"), params_file: Path = Path("params.yaml")) -> "StageInputs | None":
        """The inputs dvc.yaml lists for ``stage``; None where there is no such file or stage (a stage run by hand)."""
        try:
            stages = (read_yaml(dvc_yaml) or {}).get("stages", {})
        except (ConfigError, AttributeError):
            return None
        spec = stages.get(stage) if isinstance(stages, dict) else None
        if not isinstance(spec, dict):
            return None
        keys = []
        for entry in spec.get("params", []):  # "section" or "section.key"; {file: [keys]} for other files
            keys += [entry] if isinstance(entry, str) else [k for f, ks in entry.items() if Path(f) == params_file for k in ks]
        values = _read_params(params_file)
        deps = tuple(_interpolate(str(dep), values) for dep in spec.get("deps", []))
        return cls(stage, params_file, tuple(keys), deps, _ignore_patterns(dvc_yaml.parent / ".dvcignore"))

    def snapshot(self) -> "Snapshot":
        values = _read_params(self.params_file)
        return Snapshot({key: _lookup(values, key) for key in self.keys},
                        {dep: _fingerprint(Path(dep), self.ignore) for dep in self.deps})


@dataclass(frozen=True)
class Snapshot:
    """The values of a stage's params and the fingerprints of its dependencies at one moment."""

    params: dict[str, Any]
    deps: dict[str, Any]

    def changes(self, now: "Snapshot") -> list[str]:
        """What differs in ``now``, one line each: ``train.lr_g: 0.0015 -> 0.001``, ``fashiongen/x.py changed``."""
        lines = []
        for key, before in self.params.items():
            for name, old, new in _differences(key, before, now.params.get(key, _MISSING)):
                lines.append(f"{name}: {old!r} -> {new!r}")
        lines += [f"{dep} changed" for dep, print_ in self.deps.items() if now.deps.get(dep) != print_]
        return lines


class InputGuard:
    """Checks, before each output is replaced, that the stage's inputs are those it started with."""

    def __init__(self, inputs: StageInputs):
        self.inputs = inputs
        self.start = inputs.snapshot()

    def __call__(self) -> None:
        changes = self.start.changes(self.inputs.snapshot())
        if changes:
            listed = "; ".join(changes[:5]) + ("; ..." if len(changes) > 5 else "")
            raise InputsChanged(
                f"the inputs of stage {self.inputs.stage!r} changed while it ran ({listed}). DVC would record them "
                "beside outputs made with the old ones, so nothing was published and the previous outputs stay. "
                "If a second `dvc exp run` wrote params.yaml, it was refused by DVC's lock: run it again once this "
                "one is over; otherwise run `dvc repro` again, which uses the inputs as they are now."
            )


def _read_params(path: Path) -> dict:
    try:
        return read_yaml(path) or {}
    except ConfigError:
        return {}


def _lookup(values: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(values, dict) or part not in values:
            return _MISSING
        values = values[part]
    return values


def _interpolate(text: str, values: dict) -> str:
    return _INTERPOLATION.sub(lambda m: str(_lookup(values, m.group(1))), text)


def _differences(name: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """(dotted name, old, new) of each leaf that differs (a whole section is compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new), key=str)
                for d in _differences(f"{name}.{key}", old.get(key, _MISSING), new.get(key, _MISSING))]
    return [] if old == new else [(name, old, new)]


def _ignore_patterns(path: Path) -> tuple[str, ...]:
    """The patterns of a ``.dvcignore`` file (comments and blank lines dropped); none without one."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _ignored(name: str, is_dir: bool, patterns: tuple[str, ...]) -> bool:
    """Whether an entry called ``name`` matches a pattern (``name/`` patterns match folders only)."""
    return any(fnmatch.fnmatch(name, pattern.rstrip("/")) for pattern in patterns if is_dir or not pattern.endswith("/"))


def _fingerprint(path: Path, ignore: tuple[str, ...] = ()) -> Any:
    """(size, mtime in ns) of a file; of every file under a folder that is not ignored; None when absent."""
    try:
        info = path.stat()
    except OSError:
        return None
    if not path.is_dir():
        return (info.st_size, info.st_mtime_ns)
    entries = []
    for folder, subfolders, files in os.walk(path):
        subfolders[:] = [name for name in subfolders if not _ignored(name, True, ignore)]
        for name in files:
            if _ignored(name, False, ignore):
                continue
            location = os.path.join(folder, name)
            try:
                entry = os.stat(location)
            except OSError:
                continue
            entries.append((os.path.relpath(location, path), entry.st_size, entry.st_mtime_ns))
    return hash(tuple(sorted(entries)))
