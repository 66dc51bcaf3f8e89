"""The exception tree of veil, in one place.

```
VeilError
├── InputError          a file or array we were given is unusable (names the file)
├── ConfigError         an option value is invalid or unknown (names the option)
├── MissingExtraError   an optional dependency is not installed (names the extra)
├── BackendError        a detector or anonymizer failed at run time (wraps the cause)
└── OutputError         a result could not be written (names the path)
```

Every error raised by veil on purpose is a ``VeilError``; third-party errors are
wrapped with ``raise ... from exc`` so the original traceback is kept.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigError",
    "InputError",
    "MissingExtraError",
    "OutputError",
    "VeilError",
    "extra_packages",
]


class VeilError(Exception):
    """Base class of every error veil raises on purpose."""


class InputError(VeilError):
    """An input file or array is unusable: corrupt, unsupported, too large, wrong shape."""


class ConfigError(VeilError, ValueError):
    """An option has an invalid value, or a name (method, detector) is unknown."""


class MissingExtraError(VeilError, ImportError):
    """An optional dependency is missing; the message names a ``pip install`` that works
    however veil was installed: the extra's own packages (read from veil's metadata), and
    ``pip install '.[extra]'`` for a clone (``veil[extra]`` only resolves on an index)."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        packages = extra_packages(extra)
        self.command = "pip install " + " ".join(f"'{p}'" for p in packages or [package])
        clone = f" (in a clone of veil: pip install '.[{extra}]')" if packages else ""
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed: "
            f"{self.command}{clone}"
        )


def extra_packages(extra: str) -> list[str]:
    """The requirements behind veil's optional ``extra`` (empty when veil's metadata does
    not list it: a core dependency, or veil not installed)."""
    import re
    from importlib import metadata

    try:
        requires = metadata.requires("veil") or []
    except metadata.PackageNotFoundError:
        requires = []
    wanted = []
    for req in requires:
        spec, _, marker = req.partition(";")
        if re.search(rf"extra\s*==\s*[\"']{re.escape(extra)}[\"']", marker):
            wanted.append(spec.strip().replace(" ", ""))
    return wanted


class BackendError(VeilError, RuntimeError):
    """A detector or anonymizer backend failed while running."""


class OutputError(VeilError, OSError):
    """A result could not be written (read-only folder, disk full, would overwrite input)."""
