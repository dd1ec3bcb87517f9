"""Import what a config names by import path (`demos.policy=module:Class`, `env.imports=[pkg]`,
gymnasium's `env.id=module:id`), finding modules in the current folder as `python -m` does.

The `robot-rl` console script, unlike `python -m`, does not put the working directory on the
import path, so a user's `my_expert.py` next to them would not be found without PYTHONPATH.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def cwd_on_path() -> None:
    """Put the working directory first on sys.path (once), as `python -m` does."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


def import_module(name: str, option: str) -> Any:
    """Import `name`; option: the config key that named it, for the one-line error."""
    cwd_on_path()
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ValueError(
            f"{option}: cannot import '{name}' ({err}); install it, or run from the folder that holds it"
            " (the current folder is searched)"
        ) from err


def import_object(path: str, option: str) -> Any:
    """'package.module:Name' -> the object it names; option: the config key, for the error."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{option} must look like 'package.module:Name', got '{path}'")
    module = import_module(module_name, option)
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ValueError(f"{option}: module '{module_name}' has no '{attr}'; fix the name after ':'") from err
