"""Loading config: YAML/JSON text, files, directories, stdin -> typed Resources and Issues.

Loading validates: a document with errors is reported and left out of `resources`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from ketch.model.kinds import KINDS, group_of, kind_id
from ketch.model.meta import Issue, ObjectMeta, Origin
from ketch.model.resource import Resource
from ketch.model.yamlio import ParseError, line_of, parse_documents_checked, path_at_line

SUFFIXES = (".yaml", ".yml", ".json")
# an unknown kind in a group Ketch serves is a typo (error); any other kind is skipped (warning)
SERVED_GROUPS = frozenset(info.group for info in KINDS.values() if info.group.endswith(".istio.io"))
_TOP_LEVEL = {"apiVersion", "kind", "metadata", "status"}


@dataclass(frozen=True)
class LoadResult:
    resources: tuple[Resource, ...] = ()
    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()  # level Warning/Info: never block an apply

    @property
    def ok(self) -> bool:
        return not self.errors

    def __add__(self, other: LoadResult) -> LoadResult:
        return LoadResult(
            self.resources + other.resources, self.errors + other.errors, self.warnings + other.warnings
        )


@dataclass
class _Sink:
    resources: list[Resource] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def result(self) -> LoadResult:
        errors = tuple(i for i in self.issues if i.level == "Error")
        warnings = tuple(i for i in self.issues if i.level != "Error")
        return LoadResult(tuple(self.resources), errors, warnings)


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _unwrap(tp: Any) -> Any:
    """The container or message type behind Optional/Annotated; Any for scalar unions."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return Any
            tp = members[0]
        else:
            return tp


def typed_path(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    """`loc` printed with map keys in brackets (`headers[x-user]`), known by walking the model."""
    out = ""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out += ("." if out else "") + str(part)
            field = tp.model_fields.get(str(part)) or next(
                (f for f in tp.model_fields.values() if f.alias == part), None
            )
            tp = field.annotation if field is not None else Any
        elif origin in (tuple, list):
            out += f"[{part}]"
            tp = get_args(tp)[0]
        elif origin is dict:
            out += f"[{part}]"
            tp = get_args(tp)[1]
        else:
            out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _clean_loc(loc: Sequence[str | int]) -> list[str | int]:
    # pydantic adds union member names ('int', 'str', "literal[...]") to a location
    return [p for p in loc if isinstance(p, int) or not ("[" in p or p in ("int", "str", "float", "bool"))]


_TYPE_NAMES = {
    "string_type": "string",
    "int_type": "integer",
    "int_parsing": "integer",
    "int_from_float": "integer",
    "float_type": "number",
    "float_parsing": "number",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "dict_type": "mapping",
    "model_type": "mapping",
    "model_attributes_type": "mapping",
    "tuple_type": "list",
    "list_type": "list",
}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if value is None:
        return "null"
    return type(value).__name__


def reason_of(err: dict[str, Any]) -> str:
    kind = err["type"]
    loc = _clean_loc(err["loc"])
    if kind == "extra_forbidden":
        return f'unknown field "{loc[-1] if loc else "?"}"'
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "").replace("'", "").replace(" or ", ", ")
        return f'unknown value "{err["input"]}" for enum (one of: {expected})'
    if kind == "missing":
        return "required field missing"
    if kind in ("greater_than_equal", "less_than_equal"):
        ctx = err.get("ctx", {})
        bound = f">= {ctx['ge']}" if "ge" in ctx else f"<= {ctx['le']}"
        return f"value {err['input']} out of range: must be {bound}"
    if kind in _TYPE_NAMES:
        return f"wrong type: expected {_TYPE_NAMES[kind]}, got {_describe(err['input'])}"
    return str(err["msg"])


class _Doc:
    """Context of one document, for building Issues that carry file, line and identity."""

    def __init__(self, file: str, node: yaml.Node | None, base: list[str | int], index: int) -> None:
        self.file, self.node, self.base, self.index = file, node, base, index
        self.kind = ""
        self.namespace = ""
        self.name = ""

    def issue(self, path: Sequence[str | int], reason: str, level: str = "Error", shown: str | None = None) -> Issue:
        full = [*self.base, *path]
        line = line_of(self.node, full) if self.node is not None else 0
        text = format_path(path) if shown is None else shown
        return Issue(self.file, line, self.kind, self.namespace, self.name, text, reason, level)  # type: ignore[arg-type]


def _load_one(data: Any, doc: _Doc, sink: _Sink, validators: bool) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        sink.issues.append(doc.issue([], f"document must be a mapping, got {_describe(data)}"))
        return
    kind = data.get("kind")
    api_version = data.get("apiVersion")
    if kind in ("List",) or (isinstance(kind, str) and kind.endswith("List") and "items" in data and kind not in KINDS):
        items = data.get("items") or []
        if not isinstance(items, list):
            sink.issues.append(doc.issue(["items"], "wrong type: expected list"))
            return
        for i, item in enumerate(items):
            _load_one(item, _Doc(doc.file, doc.node, [*doc.base, "items", i], doc.index), sink, validators)
        return
    meta = data.get("metadata")
    if isinstance(meta, dict):
        doc.name = str(meta.get("name") or "")
        doc.namespace = str(meta.get("namespace") or "")
    doc.kind = kind if isinstance(kind, str) else ""
    if not isinstance(kind, str) or not kind:
        sink.issues.append(doc.issue(["kind"], "missing kind"))
        return
    if not isinstance(api_version, str) or not api_version:
        sink.issues.append(doc.issue(["apiVersion"], "missing apiVersion"))
        return
    key = kind_id(api_version, kind)
    if key is None:
        group = group_of(api_version)
        known_groups = {info.group for info in KINDS.values() if info.kind == kind}
        if known_groups:
            want = ", ".join(sorted(v for info in KINDS.values() if info.kind == kind for v in info.api_versions()))
            sink.issues.append(doc.issue(["apiVersion"], f'unknown apiVersion "{api_version}" for {kind} (want {want})'))
        elif group in SERVED_GROUPS:
            sink.issues.append(doc.issue(["kind"], f'unknown kind "{kind}" in {api_version}'))
        else:
            sink.issues.append(doc.issue(["kind"], f'unsupported kind "{kind}" ({api_version}): ignored', "Warning"))
        return
    info = KINDS[key]
    version = api_version.rpartition("/")[2]
    if version not in info.versions:
        want = ", ".join(info.api_versions())
        sink.issues.append(doc.issue(["apiVersion"], f'unknown apiVersion "{api_version}" for {kind} (want {want})'))
        return
    if not doc.namespace and info.namespaced:
        doc.namespace = "default"

    issues: list[Issue] = []
    metadata = _metadata(meta, info.namespaced, doc, issues)
    if info.spec_field is None:
        raw_spec = {k: v for k, v in data.items() if k not in _TOP_LEVEL}
        spec_loc: list[str | int] = []
    else:
        for extra in data:
            if extra not in _TOP_LEVEL and extra != info.spec_field:
                issues.append(doc.issue([extra], f'unknown field "{extra}"'))
        raw_spec = data.get(info.spec_field)
        spec_loc = [info.spec_field]
        if raw_spec is None:
            raw_spec = {}
    spec = None
    if not isinstance(raw_spec, dict):
        issues.append(doc.issue(spec_loc, f"wrong type: expected mapping, got {_describe(raw_spec)}"))
    else:
        try:
            spec = info.spec_type.model_validate(raw_spec)
        except ValidationError as exc:
            seen: set[str] = set()
            for err in exc.errors():
                inner = _clean_loc(err["loc"])
                loc = [*spec_loc, *inner]
                shown = ".".join(p for p in (format_path(spec_loc), typed_path(info.spec_type, inner)) if p)
                if shown in seen:
                    continue
                seen.add(shown)
                issues.append(doc.issue(loc, reason_of(err), shown=shown))
    if metadata is None or spec is None or issues:
        sink.issues.extend(sorted(issues, key=lambda i: i.line))
        return
    line = doc.node.start_mark.line + 1 if doc.node is not None else 0
    if doc.base and doc.node is not None:
        line = line_of(doc.node, doc.base)
    resource = Resource.model_construct(
        api_version=api_version,
        kind=kind,
        metadata=metadata,
        spec=spec,
        origin=Origin(doc.file, line, doc.index),
    )
    if validators:
        from ketch.model.validation import validate_all

        found = validate_all(resource)
        sink.issues.extend(sorted((_relocate(i, doc) for i in found), key=lambda i: i.line))
        if any(i.level == "Error" for i in found):
            return
    sink.resources.append(resource)


def _relocate(issue: Issue, doc: _Doc) -> Issue:
    """Give a validation Issue (path only) the file and line of the field in this document."""
    from ketch.model.validation.paths import parse_path

    line = line_of(doc.node, [*doc.base, *parse_path(issue.path)]) if doc.node is not None else issue.line
    return Issue(doc.file, line, issue.kind, issue.namespace, issue.name, issue.path, issue.reason, issue.level)


def _metadata(meta: Any, namespaced: bool, doc: _Doc, issues: list[Issue]) -> ObjectMeta | None:
    if not isinstance(meta, dict):
        issues.append(doc.issue(["metadata"], "missing metadata" if meta is None else "wrong type: expected mapping"))
        return None
    if not meta.get("name"):
        issues.append(doc.issue(["metadata", "name"], "name is required"))
        return None
    try:
        parsed = ObjectMeta.model_validate(meta)
    except ValidationError as exc:
        for err in exc.errors():
            inner = _clean_loc(err["loc"])
            shown = "metadata." + typed_path(ObjectMeta, inner) if inner else "metadata"
            issues.append(doc.issue(["metadata", *inner], reason_of(err), shown=shown))
        return None
    namespace = (parsed.namespace or "default") if namespaced else None
    if namespace != parsed.namespace:
        parsed = parsed.model_copy(update={"namespace": namespace})
    return parsed


def load_text(text: str, file: str = "-", *, validate: bool = True) -> LoadResult:
    """Load every document of YAML (or JSON) text."""
    sink = _Sink()
    try:
        for index, (data, node, duplicates) in enumerate(parse_documents_checked(text)):
            if duplicates:
                _duplicate_keys(data, _Doc(file, node, [], index), duplicates, sink)
                continue
            _load_one(data, _Doc(file, node, [], index), sink, validate)
    except ParseError as exc:
        sink.issues.append(Issue(file, exc.line, "", "", "", "", exc.reason))
    return sink.result()


def _duplicate_keys(data: Any, doc: _Doc, duplicates: list[tuple[int, str, int]], sink: _Sink) -> None:
    """A key given twice makes the document invalid (Kubernetes' strict decoding rejects it)."""
    if isinstance(data, dict):
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        doc.kind = str(data.get("kind") or "")
        doc.name = str(meta.get("name") or "")
        doc.namespace = str(meta.get("namespace") or "")
        key = kind_id(str(data.get("apiVersion") or ""), doc.kind)
        if not doc.namespace and key is not None and KINDS[key].namespaced:
            doc.namespace = "default"
    for line, name, first in duplicates:
        path = path_at_line(doc.node, line)
        issue = doc.issue(path, f'duplicate key "{name}" (first set on line {first})')
        sink.issues.append(Issue(issue.file, line, issue.kind, issue.namespace, issue.name, issue.path, issue.reason))


def load_documents(documents: Iterable[Any], file: str = "-", *, validate: bool = True) -> LoadResult:
    """Load already-parsed documents (dicts, e.g. a JSON request body). Lines are 0."""
    sink = _Sink()
    for index, data in enumerate(documents):
        _load_one(data, _Doc(file, None, [], index), sink, validate)
    return sink.result()


def expand_paths(paths: Iterable[str | Path]) -> list[str]:
    """Files named, and *.yaml/*.yml/*.json under directories (recursively, sorted); `-` is stdin."""
    out: list[str] = []
    for p in paths:
        if str(p) == "-":
            out.append("-")
            continue
        path = Path(p)
        if path.is_dir():
            out.extend(str(f) for f in sorted(path.rglob("*")) if f.is_file() and f.suffix in SUFFIXES)
        else:
            out.append(str(path))
    return out


def load_paths(paths: Iterable[str | Path], *, stdin: Any = None, validate: bool = True) -> LoadResult:
    """Load files, directories and `-` (stdin, or the `stdin` text stream given)."""
    result = LoadResult()
    for name in expand_paths(paths):
        if name == "-":
            stream = stdin if stdin is not None else sys.stdin
            result = result + load_text(stream.read(), "-", validate=validate)
            continue
        try:
            text = Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            result = result + LoadResult(errors=(Issue(name, 0, "", "", "", "", f"cannot read: {exc.strerror or exc}"),))
            continue
        except UnicodeDecodeError:
            result = result + LoadResult(errors=(Issue(name, 0, "", "", "", "", "not UTF-8 text"),))
            continue
        result = result + load_text(text, name, validate=validate)
    return result


def dump_yaml(resources: Iterable[Resource]) -> str:
    """Multi-document YAML of `resources`; loading it gives equal resources."""
    docs = [r.to_dict() for r in resources]
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, allow_unicode=True)


__all__ = ["LoadResult", "load_text", "load_documents", "load_paths", "dump_yaml", "expand_paths"]
