"""Lazy import of vendor SDKs, so drivers/ imports (and its tests run) without any of them."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingSDKError(ImportError):
    """A driver was used without its vendor SDK; the message names the pip package to install."""


def import_sdk(module: str, pip_package: str, driver: str) -> ModuleType:
    """The SDK module, or MissingSDKError saying which pip package the driver needs."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingSDKError(
            f"{driver} needs the Python module {module!r}: pip install {pip_package} ({exc})"
        ) from exc
