"""The record type of the warm path: small immutable value objects (a spec, a route, a plan, a rule).

One idiom for every record a warm start creates or imports: keyword construction with defaults, value equality
and hashing, ``replace()``, a readable repr. Not a NamedTuple: building a NamedTuple class execs generated code
(~0.3 ms each, measured on the CI machine), and these modules are imported by every process's first hkjit.gemm,
whose budget is a few milliseconds. Not a dataclass either (its decorator generates code the same way). Records off
the warm path (reports, CLI results) are dataclasses.

A subclass lists its fields in ``__slots__`` (in order: positional construction follows it), the defaults in
``_defaults``, and annotates each field for readers and type checkers.
"""
from __future__ import annotations

from typing import Any


class Record:
    __slots__: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not kwargs and len(args) == len(self.__slots__):      # every field given in order: the common case
            for f, v in zip(self.__slots__, args):
                object.__setattr__(self, f, v)
            return
        values = dict(self._defaults, **dict(zip(self.__slots__, args)), **kwargs)
        missing = [f for f in self.__slots__ if f not in values]
        unknown = set(values) - set(self.__slots__)
        if missing or unknown or len(args) > len(self.__slots__):
            raise TypeError(f"{type(self).__name__}: missing {missing}, unknown {sorted(unknown)}"
                            + (f", {len(args)} positional values for {len(self.__slots__)} fields"
                               if len(args) > len(self.__slots__) else ""))
        for f in self.__slots__:
            object.__setattr__(self, f, values[f])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: use .replace({name}=...)")

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self.__slots__)

    def replace(self, **changes: Any):
        """A copy with `changes` applied (the record itself never changes)."""
        return type(self)(**dict(zip(self.__slots__, self._values()), **changes))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values() == self._values()   # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self.__slots__)})"
