"""Name -> backend class, imported lazily; third-party plug-ins through entry points.

Built-in backends are registered as ``"module:Class"`` strings so that ``import veil``
never imports OpenVINO, dlib or other heavy packages. Plug-ins declare an entry point
in the group ``veil.detectors`` or ``veil.anonymizers``::

    [project.entry-points."veil.anonymizers"]
    cartoon = "my_pkg.cartoon:CartoonAnonymizer"
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Generic, TypeVar

from veil.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


def entry_points(group: str) -> Any:
    """:func:`importlib.metadata.entry_points` of ``group``, imported on first use: the
    import and the scan of installed packages cost ~0.1 s that start-up need not pay."""
    from importlib import metadata

    return metadata.entry_points(group=group)


class Registry(Generic[T]):
    """A named set of backends of one kind (detectors or anonymizers)."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._targets: dict[str, str | type[T]] = {}
        self._summaries: dict[str, str] = {}
        self._needs: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._plugins_loaded = False

    def register(
        self,
        name: str,
        target: str | type[T],
        summary: str = "",
        *,
        extra: str | None = None,
        modules: tuple[str, ...] = (),
    ) -> None:
        """Register ``target`` (a class or a ``"module:Class"`` string) under ``name``;
        ``extra`` names the optional extra whose importable ``modules`` it needs."""
        self._targets[name] = target
        self._summaries[name] = summary
        if extra is not None:
            self._needs[name] = (extra, modules)

    def extra(self, name: str) -> str | None:
        """The optional extra ``name`` needs, if any."""
        return self._needs[name][0] if name in self._needs else None

    def missing(self, name: str) -> tuple[str, list[str]] | None:
        """``(extra, modules not importable)`` when ``name`` needs an extra that is not
        installed, else ``None``. Looks the modules up without importing them."""
        if name not in self._needs:
            return None
        extra, modules = self._needs[name]
        absent = [m for m in modules if not _importable(m)]
        return (extra, absent) if absent else None

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._targets:
                self.register(ep.name, ep.value, summary=f"plug-in from {ep.value}")

    def names(self) -> list[str]:
        """All registered names, built-ins and plug-ins, sorted."""
        self._load_plugins()
        return sorted(self._targets)

    def summary(self, name: str) -> str:
        self._load_plugins()
        return self._summaries.get(name, "")

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; unknown names raise ``ConfigError`` listing all.

        Plug-ins never replace a built-in name, so a built-in is found without scanning
        the installed packages' entry points."""
        if name not in self._targets:
            self._load_plugins()
        try:
            target = self._targets[name]
        except KeyError:
            valid = ", ".join(self.names())
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {valid}") from None
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            module = importlib.import_module(module_name)
            target = getattr(module, attr)
            self._targets[name] = target
        return target

    def create(self, name: str, **options: Any) -> T:
        """Instantiate the backend ``name`` with keyword ``options``."""
        cls = self.get(name)
        try:
            return cls(**options)
        except TypeError as exc:
            raise ConfigError(f"{self.kind} {name!r}: bad options {options}: {exc}") from exc


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a blocked module
        return False
