"""YAML configuration: loading with ``yaml.safe_load`` and typed, named-key validation.

Every error names the file and the dotted key that is wrong and what was expected, in one line,
as a :class:`~app.errors.ConfigError`. Files are resolved either as a name inside a config
sub-directory (``config/domains/real.yaml`` for ``real``) or as a path to a YAML file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from app import CONFIG_DIR
from app.errors import ConfigError

T = TypeVar("T")


def resolve(name_or_path: str | Path, subdir: str) -> Path:
    """Resolve a config name (``"real"``) or a path (``"lab.yaml"``) to an existing file.

    Args:
        name_or_path: A bare name looked up in ``config/<subdir>/<name>.yaml`` or a path.
        subdir: The sub-directory of ``config/`` that holds the named files.

    Returns:
        The path of the YAML file.

    Raises:
        ConfigError: If no such file exists.
    """
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
    else:
        path = CONFIG_DIR / subdir / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR / subdir).glob("*.yaml"))
        raise ConfigError(f"{path}: no such file (expected one of {known} or a path to a .yaml file)")
    return path


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping with ``yaml.safe_load``.

    Raises:
        ConfigError: If the file is missing, is not valid YAML or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where} invalid YAML ({problem})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def file_sha256(path: str | Path) -> str:
    """Content hash of a file (hex), recorded in every metrics and summary file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``override`` (neither is modified)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Section:
    """A validated view of one mapping inside a YAML file.

    Args:
        data: The mapping.
        source: The file it came from (for error messages).
        prefix: Dotted key path of this mapping inside the file ("" at the top).
    """

    def __init__(self, data: Mapping[str, Any], source: str | Path, prefix: str = "") -> None:
        self.data = data
        self.source = str(source)
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, expected: str, found: Any) -> ConfigError:
        """Build the one-line error for ``key``."""
        shown = repr(found)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return ConfigError(f"{self.source}: key '{self._key(key)}': expected {expected}, found {shown}")

    def has(self, key: str) -> bool:
        """Whether ``key`` is present."""
        return key in self.data

    def section(self, key: str, default: Mapping[str, Any] | None = None) -> Section:
        """The nested mapping under ``key``."""
        if key not in self.data:
            if default is not None:
                return Section(default, self.source, self._key(key))
            raise ConfigError(f"{self.source}: missing key '{self._key(key)}' (expected a mapping)")
        value = self.data[key]
        if not isinstance(value, Mapping):
            raise self.error(key, "a mapping", value)
        return Section(value, self.source, self._key(key))

    def _get(self, key: str, default: Any, expected: str) -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise ConfigError(f"{self.source}: missing key '{self._key(key)}' (expected {expected})")
            return default
        return self.data[key]

    def number(self, key: str, default: Any = None, lo: float | None = None, hi: float | None = None) -> float:
        """A finite real number in ``[lo, hi]``."""
        default = _MISSING if default is None else default
        rng = f" in [{lo}, {hi}]" if lo is not None or hi is not None else ""
        value = self._get(key, default, f"a number{rng}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise self.error(key, f"a number{rng}", value)
        if value in (float("inf"), float("-inf")):
            raise self.error(key, f"a finite number{rng}", value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(key, f"a number{rng}", value)
        return float(value)

    def integer(self, key: str, default: Any = None, lo: int | None = None, hi: int | None = None) -> int:
        """An integer in ``[lo, hi]``."""
        default = _MISSING if default is None else default
        rng = f" in [{lo}, {hi}]" if lo is not None or hi is not None else ""
        value = self._get(key, default, f"an integer{rng}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"an integer{rng}", value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(key, f"an integer{rng}", value)
        return int(value)

    def boolean(self, key: str, default: Any = None) -> bool:
        """A boolean."""
        default = _MISSING if default is None else default
        value = self._get(key, default, "true or false")
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def string(self, key: str, default: Any = None, choices: list[str] | None = None) -> str:
        """A string, optionally one of ``choices``."""
        default = _MISSING if default is None else default
        expected = f"one of {choices}" if choices else "a string"
        value = self._get(key, default, expected)
        if not isinstance(value, str) or (choices and value not in choices):
            raise self.error(key, expected, value)
        return value

    def vector(self, key: str, length: int, default: Any = None, lo: float | None = None,
               hi: float | None = None) -> list[float]:
        """A list of ``length`` finite numbers, each in ``[lo, hi]``."""
        default = _MISSING if default is None else default
        expected = f"a list of {length} numbers" + (f" in [{lo}, {hi}]" if lo is not None or hi is not None else "")
        value = self._get(key, default, expected)
        if not isinstance(value, (list, tuple)) or len(value) != length:
            raise self.error(key, expected, value)
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
                raise self.error(key, expected, value)
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise self.error(key, expected, value)
            out.append(float(v))
        return out

    def list(self, key: str, default: Any = None) -> list[Any]:
        """A list (items unchecked)."""
        default = _MISSING if default is None else default
        value = self._get(key, default, "a list")
        if not isinstance(value, list):
            raise self.error(key, "a list", value)
        return value

    def unknown_keys(self, allowed: set[str]) -> None:
        """Refuse keys not in ``allowed`` (catches typos)."""
        for key in self.data:
            if key not in allowed:
                raise ConfigError(
                    f"{self.source}: unknown key '{self._key(str(key))}' (expected one of {sorted(allowed)})"
                )


_MISSING = object()
