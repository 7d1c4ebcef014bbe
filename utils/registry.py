"""A name -> factory registry, shared by models and datasets."""
from typing import Callable

from .errors import UserError


def _identity(factory: Callable) -> str:
    """'module.QualName' of a class or function: what tells two registrations apart."""
    return f'{factory.__module__}.{getattr(factory, "__qualname__", repr(factory))}'


class Registry:
    """Maps names to classes or factories. Refuses a name taken by another definition; an unknown
    name fails with the list of known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable] = {}

    def register(self, name: str) -> Callable:
        """A decorator registering a class or factory under `name`. The same definition again (same
        module and qualified name: a notebook cell run twice) replaces the first; a different one
        under a taken name is an error."""
        def decorator(factory: Callable) -> Callable:
            old = self._entries.get(name)
            if old is not None and _identity(old) != _identity(factory):
                raise ValueError(f'{self.kind} {name!r} is registered twice '
                                 f'({_identity(old)} and {_identity(factory)})')
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
