"""Named sets of params overrides (e.g. ``tiny`` for tests and CI).

A profile is a flat YAML mapping of dotted params.yaml keys to values. It is
applied either as ``dvc exp run -S key=value ...`` (what ``fashiongen profile
NAME`` prints) or directly to a params mapping (:func:`apply_overrides`).
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from fashiongen.errors import ConfigError


def available() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(__package__).iterdir() if p.name.endswith(".yaml"))


def load_profile(name: str) -> dict[str, Any]:
    """The overrides of profile ``name`` as ``{"train.epochs": 1, ...}``."""
    from ruamel.yaml import YAML

    resource = resources.files(__package__) / f"{name}.yaml"
    if not resource.is_file():
        raise ConfigError(f"unknown profile {name!r}; available: {', '.join(available())}.")
    overrides = YAML(typ="safe", pure=True).load(resource.read_text(encoding="utf-8")) or {}
    return dict(overrides)


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with each dotted key set, as `dvc exp run -S` would."""
    result = copy.deepcopy(params)
    for dotted, value in overrides.items():
        *sections, key = dotted.split(".")
        node = result
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
    return result


def set_args(overrides: dict[str, Any]) -> list[str]:
    """``["-S", "key=value", ...]`` for `dvc exp run`; values in YAML/JSON flow syntax."""
    args = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return args
