"""Hypothesis strategies for config documents of every kind, built from the spec classes."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from hypothesis import strategies as st

from ketch.model import KINDS
from ketch.model.base import Spec

_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
_NAME = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | _TEXT,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_NAME, inner, max_size=2),
    max_leaves=4,
)


def strategy(tp: Any, depth: int) -> st.SearchStrategy[Any]:
    """Input data (YAML shape) for a value of type `tp`."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        low = next((m.ge for m in meta if hasattr(m, "ge")), None)
        high = next((m.le for m in meta if hasattr(m, "le")), None)
        return st.integers(low, high) if base is int else strategy(base, depth)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(tp) if a is not type(None)]
        return st.one_of([strategy(a, depth) for a in members])
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if origin is tuple:
        return st.lists(strategy(get_args(tp)[0], depth + 1), max_size=2 if depth < 3 else 0)
    if origin is dict:
        key, value = get_args(tp)
        keys = _NAME if key is str else st.integers(1, 65535)
        return st.dictionaries(keys, strategy(value, depth + 1), max_size=2 if depth < 3 else 0)
    if isinstance(tp, type) and issubclass(tp, Spec):
        return spec_data(tp, depth + 1)
    if tp is str:
        return _TEXT
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**31), 2**31 - 1)
    if tp is float:
        return st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    return _JSONISH


def spec_data(cls: type[Spec], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    if depth > 4:
        return st.just({})
    hints = typing.get_type_hints(cls, include_extras=True)
    optional = {
        (f.alias or name): st.deferred(lambda tp=hints[name]: strategy(tp, depth))
        for name, f in cls.model_fields.items()
    }
    return st.fixed_dictionaries({}, optional=optional)


def document(kind_id: str) -> st.SearchStrategy[dict[str, Any]]:
    info = KINDS[kind_id]
    meta = st.fixed_dictionaries(
        {"name": _NAME},
        optional={
            "namespace": _NAME,
            "labels": st.dictionaries(_NAME, _NAME, max_size=2),
            "annotations": st.dictionaries(_NAME, _TEXT, max_size=2),
            "resourceVersion": st.integers(1, 10**6).map(str),
        },
    )

    def build(parts: tuple[str, dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        version, metadata, spec = parts
        doc: dict[str, Any] = {"apiVersion": version, "kind": info.kind, "metadata": metadata}
        if info.spec_field is None:
            doc.update(spec)
        else:
            doc[info.spec_field] = spec
        return doc

    return st.tuples(st.sampled_from(info.api_versions()), meta, spec_data(info.spec_type, 0)).map(build)
