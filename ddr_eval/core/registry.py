"""One registry per kind of component (architectures, degradations, metrics), as in BasicSR.

Components register themselves with a decorator when their own module is imported; each
subpackage's ``__init__`` imports its modules explicitly, so nothing is discovered by scanning
the file system and importing one kind never imports the others.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from ddr_eval.core.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping with helpful errors for unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            key = name or obj.__name__
            if key in self._items:
                raise KeyError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = obj
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plug-in or test that registered a component for a while)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise UserError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def in_registration_order(self) -> list[tuple[str, T]]:
        """The items in the order they were registered (the paper's findings are reported in the
        order their modules are imported, not alphabetically)."""
        return list(self._items.items())
