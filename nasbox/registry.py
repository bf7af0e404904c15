"""A tiny name -> factory registry, shared by spaces, estimators and strategies (as in timm)."""

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from nasbox.errors import NasboxError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories so the CLI and configs can refer to components by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name, such as a list
            raise NasboxError(
                f"unknown {self.kind} {name!r}{self._near(name)}; choose one of: "
                f"{', '.join(self.names())}"
            ) from None

    def _near(self, name: object) -> str:
        """' (did you mean 'naswot'?)' for a misspelt or wrongly cased name, else ''. Short
        names and looser matches are left out: 'rea' is near 'area' and 'nats' near 'pnas'."""
        lowered = {known.lower(): known for known in self._factories}
        text = str(name).strip().lower()
        near = [text] if text in lowered else []
        if len(text) > 3:
            near += difflib.get_close_matches(text, lowered, n=1, cutoff=0.8)
        return f" (did you mean {lowered[near[0]]!r}?)" if near else ""

    def create(self, name: str, **kwargs) -> T:
        return self.get(name)(**kwargs)
