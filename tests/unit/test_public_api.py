"""Every public name of every private module is re-exported from the package once.

After trio's ``test_exports.py``: a private module lists its public names in
``__all__``; the package re-exports each of them, and no two modules claim the
same name.
"""

from __future__ import annotations

import importlib
import pkgutil

import trio_trickle


def _private_modules() -> list[str]:
    """Every module below a private name (``trio_trickle._wire.trickle``, ``trio_trickle._cli``)."""
    names = []
    for info in pkgutil.walk_packages(trio_trickle.__path__, "trio_trickle."):
        parts = info.name.split(".")[1:]
        if parts[0].startswith("_") and parts[-1] != "__main__":
            names.append(info.name)
    return names


def test_every_public_name_is_exported_once() -> None:
    owners: dict[str, str] = {}
    for module_name in _private_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            assert name not in owners, f"{name} is public in {owners.get(name)} and {module_name}"
            owners[name] = module_name
            assert hasattr(trio_trickle, name), f"{module_name}.{name} is not re-exported"
            assert getattr(trio_trickle, name) is getattr(module, name)


def test_wire_and_core_import_no_io_libraries() -> None:
    """The wire layer and the sans-io core never import trio, httpx, hypercorn, av, torch."""
    import ast
    from pathlib import Path

    forbidden = {"trio", "httpx", "hypercorn", "quart", "quart_trio", "av", "torch", "numpy"}
    root = Path(trio_trickle.__file__).parent
    for path in sorted(root.glob("_wire/*.py")) + sorted(root.glob("_core/*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in forbidden, f"{path.name} imports {module}"


def test_version_is_the_installed_distributions() -> None:
    import importlib.metadata

    assert trio_trickle.__version__ == importlib.metadata.version("trio-trickle")
