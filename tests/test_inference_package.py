"""The inference package (``wdsr_cli/core/inference/``) never imports training or launch code.

Checked on the source, by AST, over every file of the package and, transitively, every wdsr
module those files import (a lazy import inside a function counts too): none of them may be
``core.train`` or the training modules split out of it (``core.runs``, ``core.ema``,
``core.plot``), ``core.launch`` (or anything in it), ``core.data.pipeline`` or
``core.data.prepare``. The checker itself is tested on a small package that breaks the rule.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import wdsr_cli

FORBIDDEN = ("wdsr_cli.core.train", "wdsr_cli.core.runs", "wdsr_cli.core.ema",
             "wdsr_cli.core.plot", "wdsr_cli.core.launch", "wdsr_cli.core.data.pipeline",
             "wdsr_cli.core.data.prepare")


def _module_file(root: Path, module: str) -> Path | None:
    """The source file of ``module`` under ``root`` (the folder holding the top package)."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(root: Path, module: str, path: Path) -> set[str]:
    """Every module named by an import statement in ``path`` (absolute names; for ``from X
    import a`` both X and X.a, as ``a`` may be a module)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def forbidden_imports(root: Path, package: str, forbidden: tuple[str, ...] = FORBIDDEN
                      ) -> list[tuple[str, str]]:
    """(importing module, forbidden module) for every forbidden module reachable from the
    files of ``package`` through imports of modules of the same top package."""
    top = package.split(".")[0]
    start = [(package + "." + ".".join(p.relative_to(root / Path(*package.split(".")))
                                      .with_suffix("").parts)).removesuffix(".__init__")
             for p in sorted((root / Path(*package.split("."))).rglob("*.py"))]
    seen: set[str] = set()
    todo = list(start)
    bad: list[tuple[str, str]] = []
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(root, module)
        if path is None:
            continue
        for name in sorted(_imports(root, module, path)):
            if name.split(".")[0] != top:
                continue
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append((module, name))
            elif _module_file(root, name) is not None:
                todo.append(name)
    return bad


def test_inference_never_imports_training_or_launch_code():
    root = Path(wdsr_cli.__file__).resolve().parent.parent
    assert (root / "wdsr_cli" / "core" / "inference" / "predictor.py").is_file()
    assert forbidden_imports(root, "wdsr_cli.core.inference") == []


def test_the_checker_finds_a_forbidden_import_direct_lazy_or_indirect(tmp_path):
    pkg = tmp_path / "wdsr_cli"
    for folder in ("core/inference/backends", "core/data", "core/launch"):
        (pkg / folder).mkdir(parents=True)
    for init in ("", "core", "core/inference", "core/inference/backends", "core/data",
                 "core/launch"):
        (pkg / init / "__init__.py").write_text("")
    (pkg / "core" / "train.py").write_text("")
    (pkg / "core" / "data" / "prepare.py").write_text("")
    (pkg / "core" / "launch" / "worker.py").write_text("")
    (pkg / "core" / "helper.py").write_text("from .data import prepare\n")
    inference = pkg / "core" / "inference"
    (inference / "clean.py").write_text("import numpy\nfrom ..errors import WdsrError\n")
    assert forbidden_imports(tmp_path, "wdsr_cli.core.inference") == []

    (inference / "backends" / "new_engine.py").write_text(
        "def load():\n    from ...train import Trainer\n")
    (inference / "uses_helper.py").write_text("from .. import helper\n")
    (inference / "absolute.py").write_text("import wdsr_cli.core.launch.worker\n")
    found = forbidden_imports(tmp_path, "wdsr_cli.core.inference")
    assert ("wdsr_cli.core.inference.backends.new_engine", "wdsr_cli.core.train") in found
    assert ("wdsr_cli.core.helper", "wdsr_cli.core.data.prepare") in found
    assert ("wdsr_cli.core.inference.absolute", "wdsr_cli.core.launch.worker") in found


def test_importing_every_inference_module_loads_no_training_code():
    """The same rule at run time: import each module of the package, then look at what got
    loaded (no MindSpore needed for any of these imports)."""
    code = (
        "import pkgutil, sys, wdsr_cli.core.inference as p\n"
        "for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
        "    __import__(m.name)\n"
        f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN!r})]\n"
        "print(bad, 'mindspore' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[] False"
