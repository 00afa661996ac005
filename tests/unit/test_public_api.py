"""The public API: three namespaces, each an explicit ``__all__``, nothing else public.

After trio's ``test_exports.py``. ``trio_trickle`` holds what an embedder uses,
``trio_trickle.wire`` the whole wire vocabulary, ``trio_trickle.media`` frames and
MPEG-TS; every other module is private. Public classes and functions name their
public module (reprs, tracebacks); ``import *`` gives exactly ``__all__`` whatever
was imported before; benchmarks, examples and the README import only public names.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import trio_trickle
import trio_trickle.media
import trio_trickle.wire

ROOT = Path(__file__).parents[2]
PUBLIC = {
    "trio_trickle": trio_trickle,
    "trio_trickle.wire": trio_trickle.wire,
    "trio_trickle.media": trio_trickle.media,
}
#: Public modules that are not namespaces of re-exports.
OTHER_PUBLIC = {"trio_trickle.conformance", "trio_trickle.examples", "trio_trickle.__main__"}


def _modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(trio_trickle.__path__, "trio_trickle.")]


def _is_private(module_name: str) -> bool:
    return any(part.startswith("_") for part in module_name.split(".")[1:])


def test_every_module_is_private_or_a_known_public_one() -> None:
    public = {name for name in _modules() if not _is_private(name)}
    assert public <= set(PUBLIC) | OTHER_PUBLIC, public - set(PUBLIC) - OTHER_PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_all_is_explicit_resolvable_and_the_only_public_names(name: str) -> None:
    module = PUBLIC[name]
    exported = module.__all__
    assert len(exported) == len(set(exported)), "a name listed twice"
    for item in exported:
        assert hasattr(module, item), f"{name}.{item} is in __all__ but missing"
    submodules = {m.rsplit(".", 1)[1] for m in _modules() if m.count(".") == 1}
    extra = {
        attr
        for attr in vars(module)
        if not attr.startswith("_")
        and attr not in exported
        and attr not in submodules
        and attr != "annotations"  # from __future__
        and not isinstance(getattr(module, attr), types.ModuleType)
    }
    assert not extra, f"{name} has public names outside __all__: {sorted(extra)}"


def test_no_name_is_public_twice() -> None:
    seen: dict[str, str] = {}
    for name, module in PUBLIC.items():
        for item in module.__all__:
            assert item not in seen, f"{item} is public in {seen[item]} and {name}"
            seen[item] = name


def test_the_top_level_stays_small() -> None:
    """An embedder's API fits in one's head; plumbing and the wire live elsewhere."""
    assert len(trio_trickle.__all__) <= 64


def test_the_wire_namespace_has_every_wire_message() -> None:
    """Every name a ``_wire`` module calls public is in ``trio_trickle.wire``, and only those."""
    declared: set[str] = set()
    for module_name in _modules():
        if module_name.startswith("trio_trickle._wire."):
            declared |= set(getattr(importlib.import_module(module_name), "__all__", []))
    assert declared == set(trio_trickle.wire.__all__)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_classes_and_functions_name_their_public_module(name: str) -> None:
    module = PUBLIC[name]
    for item in module.__all__:
        obj = getattr(module, item)
        if isinstance(obj, type | types.FunctionType):
            assert obj.__module__ == name, f"{name}.{item} says {obj.__module__}"
            assert obj.__qualname__ == item
    assert "trio_trickle.TricklePublisher" in repr(trio_trickle.TricklePublisher)
    assert repr(trio_trickle.ProtocolError("x", status=404)) == ("ProtocolError('x', status=404)")


def test_star_import_is_all_whatever_was_imported_before() -> None:
    """In a fresh interpreter, before and after importing private modules."""
    code = (
        "import sys\n"
        "ns = {}\n"
        "exec('from trio_trickle import *', ns)\n"
        "first = sorted(k for k in ns if not k.startswith('__'))\n"
        "import trio_trickle._session.session, trio_trickle._runner.app, trio_trickle._demo\n"
        "ns2 = {}\n"
        "exec('from trio_trickle import *', ns2)\n"
        "second = sorted(k for k in ns2 if not k.startswith('__'))\n"
        "import trio_trickle\n"
        "assert first == second == sorted(trio_trickle.__all__), (first, second)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_importing_the_package_imports_no_media_library() -> None:
    code = (
        "import sys, trio_trickle, trio_trickle.wire, trio_trickle.examples\n"
        "loaded = [m for m in ('av', 'numpy', 'torch') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def _imported_names(tree: ast.AST) -> list[tuple[str, str]]:
    """``(module, name)`` of every import of trio_trickle in ``tree`` (name empty: ``import``)."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return [(m, n) for m, n in found if m.split(".")[0] == "trio_trickle"]


def _check_public(where: str, imports: list[tuple[str, str]]) -> None:
    for module, name in imports:
        assert not _is_private(module), f"{where} imports private {module}"
        if name and module in PUBLIC:
            assert name in PUBLIC[module].__all__, f"{where} imports {module}.{name}"


def test_benchmarks_and_examples_use_the_public_api_only() -> None:
    paths = sorted((ROOT / "benchmarks").glob("*.py"))
    paths.append(ROOT / "src" / "trio_trickle" / "examples.py")
    for path in paths:
        tree = ast.parse(path.read_text())
        # examples.py sits inside the package; its relative imports would be private too
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert not relative, f"{path.name} imports relatively"
        _check_public(path.name, _imported_names(tree))


def test_the_readme_uses_the_public_api_only() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        _check_public("README.md", _imported_names(ast.parse(block)))


def test_wire_and_core_import_no_io_libraries() -> None:
    """The wire layer and the sans-io cores never import trio, httpx, hypercorn, av, torch."""
    forbidden = {"trio", "httpx", "hypercorn", "quart", "quart_trio", "av", "torch", "numpy"}
    root = Path(trio_trickle.__file__).parent
    for folder in ("_wire", "_core", "_registry"):
        for path in sorted(root.glob(f"{folder}/*.py")):
            for module, _ in _imported_names_any(ast.parse(path.read_text())):
                assert module.split(".")[0] not in forbidden, f"{path.name} imports {module}"


def _imported_names_any(tree: ast.AST) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, ""))
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def test_version_is_the_installed_distributions() -> None:
    assert trio_trickle.__version__ == importlib.metadata.version("trio-trickle")
