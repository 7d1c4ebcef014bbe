"""A name -> factory registry, shared by models and datasets."""
from typing import Callable

from .errors import UserError


class Registry:
    """Maps names to classes or factories. Refuses a name registered twice; an unknown name
    fails with the list of known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable] = {}

    def register(self, name: str) -> Callable:
        def decorator(factory: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f'{self.kind} {name!r} is registered twice '
                                 f'({self._entries[name].__module__} and {factory.__module__})')
            self._entries[name] = factory
            return factory
        return decorator

    def get(self, name: str) -> Callable:
        if name not in self._entries:
            raise UserError(f'unknown {self.kind} {name!r}; known: {", ".join(sorted(self._entries))}')
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
