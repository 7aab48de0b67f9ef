"""The house's layers (README, "Layout"): no module imports a layer above its own.

Read statically from every module's imports, function-level ones included, so a lower layer that
reaches up only inside a function fails here too.
"""

from __future__ import annotations

import ast
import pathlib

import batch_nst

PACKAGE = pathlib.Path(batch_nst.__file__).parent
# Layer of each module, by its dotted name under batch_nst; a subpackage's modules share its layer.
FLOOR, ASSETS, ENGINE, JOB, TOP = range(5)
LAYERS = {"errors": FLOOR, "fields": FLOOR, "params": FLOOR, "uris": FLOOR, "storage": FLOOR, "cache": FLOOR,
          "weights": FLOOR, "imagenet_q8": FLOOR, "assets": ASSETS, "engine": ENGINE, "job": JOB,
          "cli": TOP, "commands": TOP, "console": TOP, "report": TOP, "thumbnails": TOP, "__init__": TOP, "__main__": TOP}
NO_STORAGE = (ASSETS, ENGINE)  # pixels and the optimization touch no fsspec (weights come as a local file)


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1] if module.count(".") else "__init__"]


def _imports(path: pathlib.Path) -> set[str]:
    """batch_nst modules a file imports (`from batch_nst import x` names x's module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("batch_nst.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "batch_nst":
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if (PACKAGE / "/".join(name.split(".")[1:])).with_suffix(".py").exists()
                          or (PACKAGE / "/".join(name.split(".")[1:])).is_dir() else node.module)
    return {name for name in found if name != "batch_nst"}


def _modules() -> dict[str, pathlib.Path]:
    return {"batch_nst." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer():
    """A new top-level module or subpackage must be placed in LAYERS before it can be imported."""
    assert {name.split(".")[1] if name.count(".") else "__init__" for name in _modules()} <= set(LAYERS)


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{name} ({_layer(name)}) imports {target} ({_layer(target)})"
              for name, path in _modules().items() for target in _imports(path) if _layer(target) > _layer(name)]
    assert upward == []


def test_the_engine_and_assets_never_touch_storage():
    reaching = [f"{name} imports {target}" for name, path in _modules().items() if _layer(name) in NO_STORAGE
                for target in _imports(path) if target == "batch_nst.storage"]
    assert reaching == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The test itself can fail: an engine module importing the job is caught."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from batch_nst.job import driver\n    import batch_nst.report\n")
    assert _imports(module) == {"batch_nst.job.driver", "batch_nst.report"}
    assert max(_layer(t) for t in _imports(module)) > ENGINE
