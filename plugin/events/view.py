"""Typed views of ECS JSON events holding only the fields the loaded rules read.

The ruleset's field names become a tree of msgspec Structs (`process` -> `parent` -> `name`), so
a candidate line is decoded into just those fields; everything else is skipped by the decoder.
Flat dotted keys (`{"process.name": ...}`, as some shippers write) are fields of the top Struct.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import msgspec

__all__ = ["ViewSchema", "Accessor", "MISSING", "field_error"]

Accessor = Callable[[Any], Any]
MISSING = None
# msgspec refuses these in a renamed (JSON) field name, so a view cannot hold such a field.
_UNNAMEABLE = re.compile(r'[\\"\x00-\x1f]')


def field_error(field: str) -> str | None:
    """Why a rule's field name cannot be read through a view, or None when it can."""
    bad = _UNNAMEABLE.search(field)
    return None if bad is None else f"field name {field!r} holds {bad.group()!r}, which a view cannot read"


def _tree(fields: Iterable[str]) -> dict[str, Any]:
    """Nested dict of path parts; a leaf is {}. Numeric parts (array indices) end the typed path."""
    root: dict[str, Any] = {}
    for f in fields:
        node = root
        for part in f.split("."):
            if part.isdigit():
                break
            node = node.setdefault(part, {})
    return root


class ViewSchema:
    """The Struct type for the rules' fields and one accessor per field name."""

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = sorted(set(fields))
        self._counter = 0
        self._attrs: dict[int, dict[str, str]] = {}  # id(struct class) -> JSON key -> attribute
        tree = _tree(self.fields)
        self.type = self._struct("View", tree, flat=[f for f in self.fields if "." in f])
        # the view class is made at run time, so its instances are read through accessors, untyped
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.type)
        self.accessors: dict[str, Accessor] = {f: self._accessor(f) for f in self.fields}
        # Fields the view holds as objects of its own (a rule reads `a` and `a.b`): read from the view,
        # not the values the untyped decode holds. Fields past an index read the decoded value there.
        self.object_fields = [f for f in self.fields if not any(p.isdigit() for p in f.split("."))
                              and _subtree(tree, f)]

    def _attr(self) -> str:
        self._counter += 1
        return f"f{self._counter}"

    def _struct(self, name: str, tree: dict[str, Any], flat: tuple[str, ...] | list[str] = ()) -> type:
        specs: list[tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        attrs: dict[str, str] = {}
        for key, sub in tree.items():
            attr = self._attr()
            attrs[key] = attr
            rename[attr] = key
            # A key with children is an object; a leaf takes any JSON value (str, list, number ...).
            typ = self._struct(name + "_" + attr, sub) | None if sub else Any
            specs.append((attr, typ, None))
        for dotted in flat:
            attr = self._attr()
            attrs["\x00" + dotted] = attr
            rename[attr] = dotted
            specs.append((attr, Any, None))
        cls = msgspec.defstruct(name, specs, rename=rename, frozen=True)
        self._attrs[id(cls)] = attrs
        return cls

    def _accessor(self, field: str) -> Accessor:
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in field.split(".")]
        typed: list[str] = []
        cls: Any = self.type
        for p in parts:
            if isinstance(p, int):
                break
            attrs = self._attrs[id(cls)]
            typed.append(attrs[p])
            hint = msgspec.structs.fields(cls)
            ftype = next(f.type for f in hint if f.name == attrs[p])
            args = getattr(ftype, "__args__", ())
            nxt = next((a for a in args if isinstance(a, type) and issubclass(a, msgspec.Struct)), None)
            if nxt is None:
                break
            cls = nxt
        rest = parts[len(typed):]
        flat_attr = self._attrs[id(self.type)].get("\x00" + field) if "." in field else None
        return _make_accessor(typed, rest, flat_attr, field, parts)


def _subtree(tree: dict[str, Any], field: str) -> dict[str, Any]:
    node = tree
    for part in field.split("."):
        node = node.get(part, {})
    return node


def _walk_plain(value: Any, parts: list[str | int]) -> Any:
    """Follow path parts through plain dicts and lists (untyped JSON)."""
    for p in parts:
        if value is None:
            return None
        if isinstance(p, int):
            if isinstance(value, list) and p < len(value):
                value = value[p]
            elif isinstance(value, dict):
                value = value.get(str(p))
            else:
                return None
        elif isinstance(value, dict):
            value = value.get(p)
        else:
            return None
    return value


def _make_accessor(typed: list[str], rest: list[str | int], flat_attr: str | None, field: str,
                   parts: list[str | int]) -> Accessor:
    if not rest:
        return _typed_accessor(typed, flat_attr, field, parts)

    def get(view: Any) -> Any:
        if type(view) is dict:  # the untyped fallback decode
            v = view.get(field) if flat_attr else None
            return v if v is not None else _walk_plain(view, parts)
        if flat_attr is not None:
            v = getattr(view, flat_attr)
            if v is not None:
                return v
        cur = view
        for a in typed:
            cur = getattr(cur, a)
            if cur is None:
                return None
        return _walk_plain(cur, rest) if rest else cur

    return get


def _typed_accessor(typed: list[str], flat_attr: str | None, field: str, parts: list[str | int]) -> Accessor:
    """`_make_accessor` for a field the view holds whole: one C call down the attributes (a
    missing object on the way is None, the one AttributeError)."""
    chain = attrgetter(".".join(typed))
    keys = [str(p) for p in parts]  # all keys: the view holds the field whole

    def get(view: Any) -> Any:
        if type(view) is dict:  # the untyped decode: `_walk_plain` over keys only
            if flat_attr is not None:
                v = view.get(field)
                if v is not None:
                    return v
            for k in keys:
                if not isinstance(view, dict):
                    return None
                view = view.get(k)
            return view
        if flat_attr is not None:
            v = getattr(view, flat_attr)
            if v is not None:
                return v
        try:
            return chain(view)
        except AttributeError:
            return None

    return get
