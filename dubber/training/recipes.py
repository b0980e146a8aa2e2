"""Training recipes: a TOML file of a train config's fields (``recipes/*.toml`` hold the ones that made the shipped
weights), with ``KEY=VALUE`` overrides from the command line, read into the config dataclass."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

from dubber.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Config = TypeVar("Config")


def read_recipe(path: str | Path) -> dict:
    """The recipe's settings (a flat TOML table)."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(path, "no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the recipe ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not a TOML recipe ({exc})") from None


def parse_overrides(items: list[str]) -> dict:
    """``["lr=1e-3", "audio=speech"]`` -> ``{"lr": 0.001, "audio": "speech"}``: each value read as TOML, a bare word
    as a string."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(None, f"--set {item!r}: give KEY=VALUE")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value.strip()
    return out


def make_config(config_class: type[Config], *layers: dict, where: str = "recipe") -> Config:
    """``config_class`` from settings layered in order (a recipe, then overrides); a key it lacks is an InputError
    naming it and the keys there are."""
    known = [f.name for f in fields(config_class)]
    merged: dict = {}
    for layer in layers:
        merged.update(layer)
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise InputError(None, f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(known)})")
    try:
        return config_class(**merged)
    except (TypeError, ValueError) as exc:
        raise InputError(None, f"{where}: {exc}") from None
