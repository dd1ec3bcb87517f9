"""The import layers: drivers <- sim <- robot_rl, and robot_rl.config above the parts it configures.

drivers/ (robot hardware protocols) imports nothing of this project but drivers.*; sim/ imports
nothing of robot_rl; robot_rl.config composes the configs of envs, data, nets and agents, so none
of those packages imports it (a config dataclass lives next to what it configures). Every import
counts, also one inside a function; the second test also follows module-level imports through.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("drivers", "sim", "robot_rl", "launch", "benchmarks")
BELOW_CONFIG = ("robot_rl.envs", "robot_rl.data", "robot_rl.nets", "robot_rl.agents")


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module path.py imports, absolute (relative imports resolved against root)."""
    package = list(path.relative_to(root).parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = [*package[: len(package) - node.level + 1]] if node.level else []
            base = ".".join([*parts, *([node.module] if node.module else [])])
            found |= {base} - {""} | {f"{base}.{alias.name}".lstrip(".") for alias in node.names}
    return found


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def test_the_scan_sees_relative_and_function_level_imports(tmp_path):
    module = tmp_path / "drivers" / "arm.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from .. import sim\n    import robot_rl.config\nfrom .safety import x\n")
    found = imports(module, root=tmp_path)
    assert {"sim", "robot_rl.config", "drivers.safety", "drivers.safety.x"} <= found
    assert not under("drivers.safety", "sim") and under("robot_rl.config", "robot_rl")


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("drivers", tuple(p for p in PROJECT if p != "drivers")),
        ("sim", ("robot_rl", "launch", "benchmarks")),
        *[(p, ("robot_rl.config",)) for p in BELOW_CONFIG],
    ],
)
def test_no_import_runs_back_up(package, forbidden):
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        for name in sorted(imports(path))
        if under(name, *forbidden)
    ]
    assert not wrong, "imports against the layering (drivers <- sim <- robot_rl):\n" + "\n".join(wrong)


def test_the_layers_below_config_load_without_it():
    loaded = "sorted(m for m in sys.modules if m == 'robot_rl.config' or m.startswith('robot_rl.runtime'))"
    code = "import sys\n" + "".join(
        f"import {p}\n" for p in ("drivers", "sim", *BELOW_CONFIG, "robot_rl.envs.factory")
    )
    code += f"print({loaded})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", f"importing the envs, data, nets and agents loaded {out.stdout}"
