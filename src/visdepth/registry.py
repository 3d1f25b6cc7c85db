"""One registry shape for every named thing a user can pick: model families, tasks and data sets, experiments.

A :class:`Registry` maps names to objects. It refuses a second object under a name already taken (a collision
is a bug, never a silent override), lets the very same object (or a reload of the same definition) register
again, and answers an unknown name with one line naming the closest registered ones and where to list them
all. Two registries can share one namespace (:meth:`Registry.share_names_with`), which is how the names of
tasks and data sets stay one set of names.

This module imports nothing from visdepth but its errors, so any module can hold a registry. The instances live
beside what they register (``visdepth.models.registry``, ``visdepth.tasks.registry``, ``visdepth.data.builtin``);
:data:`EXPERIMENTS` lives here, since the experiments register into it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Generic, TypeVar, overload

from visdepth.errors import NameCollisionError, UnknownNameError

T = TypeVar("T")
U = TypeVar("U")

# How many close names an unknown-name message offers, and how many names it lists when none is close.
_CLOSEST = 3
_LISTED = 12
_MISSING: Any = object()


def definition(obj: Any) -> Hashable:
    """Where ``obj`` was defined, ``(module, qualname)``, for a class or function; else ``obj`` itself.

    Two registrations with the same definition are one thing registered twice (a module imported again or
    reloaded), not a collision.
    """
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and callable(obj):
        return ("definition", module, qualname)
    try:
        hash(obj)
    except TypeError:
        return ("object", id(obj))
    return obj


def describe(obj: Any) -> str:
    """A short name of ``obj`` for messages: ``module.qualname`` for classes and functions, else its repr."""
    key = definition(obj)
    if isinstance(key, tuple) and key and key[0] == "definition":
        return f"{key[1]}.{key[2]}"
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."


def closest(name: str, candidates: Iterable[str], n: int = _CLOSEST) -> list[str]:
    """The candidates nearest to ``name`` (case-insensitive, :func:`difflib.get_close_matches`), nearest first."""
    by_lower: dict[str, str] = {}
    for c in candidates:
        by_lower.setdefault(c.lower(), c)
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)]


def unknown_name_message(
    kind: str,
    name: str,
    candidates: Iterable[str],
    *,
    listing: str | None = None,
    hint: str = "",
    listed: Iterable[str] | None = None,
) -> str:
    """One line for an unknown ``name``: the kind, the name, the closest candidates (or, when none is close,
    the ``listed`` names, default the candidates, if they are few), an optional ``hint`` (another form of name
    that is accepted) and the command that lists every name."""
    candidates = list(dict.fromkeys(candidates))
    shown = candidates if listed is None else list(dict.fromkeys(listed))
    near = closest(name, candidates)
    if near:
        parts = [f"unknown {kind} {name!r}; did you mean {_or(near)}?"]
    elif not shown:
        parts = [f"unknown {kind} {name!r}; none is registered."]
    elif len(shown) <= _LISTED:
        parts = [f"unknown {kind} {name!r}; use one of {', '.join(shown)}."]
    else:
        parts = [f"unknown {kind} {name!r}; no registered name is close."]
    if hint:
        parts.append(hint.rstrip(".") + ".")
    if listing:
        parts.append(f"See `{listing}` for every name.")
    return " ".join(parts)


def _or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


class Registry(Generic[T]):
    """Names to objects of one kind, with collisions refused and unknown names answered with the closest ones.

    Parameters
    ----------
    kind : str
        What is registered, for messages (``"task"``, ``"model family"``).
    listing : str, optional
        The command that lists every name (``"visdepth datasets"``), named in unknown-name messages.
    identity : callable, optional
        ``identity(obj) -> hashable``: objects with equal identities are one definition registered again (a
        reloaded module), which replaces the old one instead of colliding. Default :func:`definition`.

    Examples
    --------
    >>> colours = Registry("colour", listing="paint --list")
    >>> @colours.register("red")
    ... class Red: ...
    >>> colours.get("red") is Red
    True
    >>> colours.get("rde")
    Traceback (most recent call last):
    visdepth.errors.UnknownNameError: unknown colour 'rde'; did you mean red? See `paint --list` for every name.
    """

    def __init__(
        self,
        kind: str,
        *,
        listing: str | None = None,
        identity: Callable[[T], Hashable] | None = None,
    ) -> None:
        self.kind = kind
        self.listing = listing
        self._identity = identity or definition
        self._entries: dict[str, T] = {}
        # other registries of the same namespace: (partner, same(name, mine, theirs), fix named on a collision)
        self._partners: list[tuple[Registry[Any], Callable[[str, Any, Any], bool], str]] = []

    # --- registering -----------------------------------------------------------------------------------------

    @overload
    def register(self, name: str, obj: None = None, *, overwrite: bool = False) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, overwrite: bool = False) -> T: ...

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name`` and return it; without ``obj``, a decorator that does so.

        The same object again is a no-op and a reload of the same definition replaces the old one; another
        object under a taken name raises :class:`~visdepth.errors.NameCollisionError` unless ``overwrite``
        (meant for tests and deliberate plugins, never for built-ins).
        """
        if obj is None:

            def decorator(target: T) -> T:
                return self.register(name, target, overwrite=overwrite)

            return decorator
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValueError(
                f"{self.kind} name {name!r} must be a non-empty string without surrounding spaces"
            )
        if self._entries.get(name, _MISSING) is obj:
            return obj
        self.check(name, obj, overwrite=overwrite)
        self._entries[name] = obj
        return obj

    def check(self, name: str, obj: T, *, overwrite: bool = False) -> None:
        """Raise :class:`~visdepth.errors.NameCollisionError` if registering ``obj`` as ``name`` would be
        refused; register nothing (lets a caller check several names before taking any)."""
        current = self._entries.get(name, _MISSING)
        if current is not _MISSING and current is not obj and not overwrite and not self._same(current, obj):
            raise NameCollisionError(
                f"{self.kind} {name!r} is already registered as {describe(current)}; refusing to register "
                f"{describe(obj)} under the same name: give one of them another name."
            )
        for partner, same, fix in self._partners:
            theirs = partner._entries.get(name, _MISSING)
            if theirs is not _MISSING and not same(name, obj, theirs):
                raise self._namespace_collision(name, obj, partner, theirs, fix)

    def _namespace_collision(
        self, name: str, obj: T, partner: Registry[Any], theirs: Any, fix: str
    ) -> NameCollisionError:
        return NameCollisionError(
            f"{self.kind} {name!r} ({describe(obj)}) collides with the {partner.kind} {name!r} "
            f"({describe(theirs)}): {self.kind} and {partner.kind} names are one namespace, so give one of "
            f"them another name{f' ({fix})' if fix else ''}."
        )

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return what it held (for tests and plugins that clean up after themselves)."""
        if name not in self._entries:
            raise self.unknown(name)
        return self._entries.pop(name)

    def share_names_with(
        self, other: Registry[U], same: Callable[[str, T, U], bool], *, fix: str = ""
    ) -> None:
        """Make this registry and ``other`` one namespace: a name may be in both only when
        ``same(name, obj_here, obj_there)`` says the two entries are one thing (checked now and at every later
        registration into either); ``fix`` is named in the collision message as the other way out."""
        for name, obj in self._entries.items():
            if name in other._entries and not same(name, obj, other._entries[name]):
                raise self._namespace_collision(name, obj, other, other._entries[name], fix)

        def flipped(name: str, theirs: U, mine: T) -> bool:
            return same(name, mine, theirs)

        # a second call (a reloaded module) replaces the first link instead of stacking another
        self._partners = [e for e in self._partners if e[0] is not other] + [(other, same, fix)]
        other._partners = [e for e in other._partners if e[0] is not self] + [(self, flipped, fix)]

    def _same(self, a: T, b: T) -> bool:
        try:
            return bool(self._identity(a) == self._identity(b))
        except Exception:  # an identity that cannot compare two objects does not make them one
            return False

    # --- looking up ------------------------------------------------------------------------------------------

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name raises :class:`~visdepth.errors.UnknownNameError`
        naming the closest registered names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(str(name)) from None

    def find(self, name: str) -> T | None:
        """The object registered as ``name``, or ``None``."""
        return self._entries.get(name)

    def unknown(
        self,
        name: str,
        *,
        candidates: Iterable[str] | None = None,
        listed: Iterable[str] | None = None,
        kind: str | None = None,
        hint: str = "",
    ) -> UnknownNameError:
        """The error for an unknown ``name`` (to raise), suggesting among ``candidates`` (default: the names);
        see :func:`unknown_name_message` for the other arguments."""
        return UnknownNameError(
            unknown_name_message(
                kind or self.kind,
                name,
                self.names() if candidates is None else candidates,
                listing=self.listing,
                hint=hint,
                listed=listed,
            )
        )

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs, in registration order."""
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} names)"


EXPERIMENTS: Registry[Any] = Registry("experiment", listing="visdepth run --help")
"""The experiments by name (``dynamics``, ``swap``, ``truncate``...); each experiment module registers itself."""

__all__ = [
    "EXPERIMENTS",
    "Registry",
    "closest",
    "definition",
    "describe",
    "unknown_name_message",
]
