"""Make re-exported names say where users import them from.

A class defined in ``trio_trickle._client.publisher`` and re-exported as
``trio_trickle.TricklePublisher`` would show the private path in reprs,
tracebacks and documentation. After trio's ``fixup_module_metadata``: each
public namespace calls :func:`fixup_module_metadata` on its ``__all__`` once,
and the classes and functions (with the methods defined in them) then name the
public module.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

__all__: list[str] = []


def fixup_module_metadata(
    module_name: str, namespace: Mapping[str, Any], names: Iterable[str]
) -> None:
    """Set ``__module__`` of every public class or function in ``names`` to ``module_name``."""
    seen: set[int] = set()

    def fix(obj: object, origin: str) -> None:
        if id(obj) in seen or getattr(obj, "__module__", None) != origin:
            return
        seen.add(id(obj))
        try:
            obj.__module__ = module_name
        except (AttributeError, TypeError):  # a builtin or slotted object: leave it
            return
        if isinstance(obj, type):
            for member in vars(obj).values():
                member = getattr(member, "__func__", member)  # classmethod, staticmethod
                if isinstance(member, type | types.FunctionType):
                    fix(member, origin)

    for name in names:
        obj = namespace[name]
        origin = getattr(obj, "__module__", None)
        public = isinstance(obj, type | types.FunctionType)
        if public and isinstance(origin, str) and origin.startswith("trio_trickle._"):
            fix(obj, origin)
