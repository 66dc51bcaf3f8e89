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
]


class VeilError(Exception):
    """Base class of every error veil raises on purpose."""


class InputError(VeilError):
    """An input file or array is unusable: corrupt, unsupported, too large, wrong shape."""


class ConfigError(VeilError, ValueError):
    """An option has an invalid value, or a name (method, detector) is unknown."""


class MissingExtraError(VeilError, ImportError):
    """An optional dependency is missing; the message names the ``pip install`` to run."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed: "
            f"pip install 'veil[{extra}]'"
        )


class BackendError(VeilError, RuntimeError):
    """A detector or anonymizer backend failed while running."""


class OutputError(VeilError, OSError):
    """A result could not be written (read-only folder, disk full, would overwrite input)."""
