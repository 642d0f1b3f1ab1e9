"""Compiled Envoy matchers: StringMatcher, HeaderMatcher, QueryParameterMatcher, header ops.

Everything is compiled once when a route configuration arrives (regexes included) so the
per-request work is plain string comparisons. Regexes follow RE2 semantics closely enough
with Python's `re` (full match, as Envoy's safe_regex requires).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from google.protobuf.message import Message

from ketch.proxy.protoutil import Unsupported, check_fields

Headers = Mapping[str, str]


def compile_regex(regex_matcher: Message, where: str) -> re.Pattern[str]:
    check_fields(regex_matcher, ("regex", "google_re2"), where)
    try:
        return re.compile(regex_matcher.regex)
    except re.error as exc:
        raise Unsupported(f"{where}: invalid regex {regex_matcher.regex!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class StringMatch:
    kind: str  # exact | prefix | suffix | contains | regex
    value: str
    ignore_case: bool = False
    pattern: re.Pattern[str] | None = None

    @classmethod
    def from_proto(cls, sm: Message, where: str) -> StringMatch:
        check_fields(sm, ("exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"), where)
        kind = sm.WhichOneof("match_pattern")
        if kind is None:
            raise Unsupported(f"{where}: string matcher without a pattern")
        if kind == "safe_regex":
            pat = compile_regex(sm.safe_regex, where)
            return cls("regex", sm.safe_regex.regex, False, pat)
        value = getattr(sm, kind)
        if sm.ignore_case:
            value = value.lower()
        return cls(kind, value, sm.ignore_case)

    def matches(self, s: str) -> bool:
        if self.pattern is not None:
            return self.pattern.fullmatch(s) is not None
        if self.ignore_case:
            s = s.lower()
        k = self.kind
        if k == "exact":
            return s == self.value
        if k == "prefix":
            return s.startswith(self.value)
        if k == "suffix":
            return s.endswith(self.value)
        return self.value in s


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """Envoy HeaderMatcher. Pseudo-headers (:authority, :path, :method, :scheme) work too."""

    name: str
    test: Callable[[str], bool] | None  # None: presence only
    present: bool = True
    invert: bool = False
    missing_as_empty: bool = False

    @classmethod
    def from_proto(cls, hm: Message, where: str) -> HeaderMatch:
        check_fields(hm, ("name", "exact_match", "safe_regex_match", "range_match", "present_match",
                          "prefix_match", "suffix_match", "contains_match", "string_match",
                          "invert_match", "treat_missing_header_as_empty"), where)
        name = hm.name.lower()
        kind = hm.WhichOneof("header_match_specifier")
        test: Callable[[str], bool] | None
        present = True
        if kind is None:
            test = None
        elif kind == "present_match":
            test, present = None, hm.present_match
        elif kind == "string_match":
            test = StringMatch.from_proto(hm.string_match, where).matches
        elif kind == "safe_regex_match":
            pat = compile_regex(hm.safe_regex_match, where)
            test = lambda s, p=pat: p.fullmatch(s) is not None  # noqa: E731
        elif kind == "exact_match":
            test = hm.exact_match.__eq__
        elif kind == "prefix_match":
            test = lambda s, v=hm.prefix_match: s.startswith(v)  # noqa: E731
        elif kind == "suffix_match":
            test = lambda s, v=hm.suffix_match: s.endswith(v)  # noqa: E731
        elif kind == "contains_match":
            test = lambda s, v=hm.contains_match: v in s  # noqa: E731
        elif kind == "range_match":
            lo, hi = hm.range_match.start, hm.range_match.end

            def test(s: str, lo: int = lo, hi: int = hi) -> bool:
                try:
                    return lo <= int(s) < hi
                except ValueError:
                    return False
        else:  # pragma: no cover - exhaustive above
            raise Unsupported(f"{where}: header matcher {kind} is not supported")
        return cls(name, test, present, hm.invert_match, hm.treat_missing_header_as_empty)

    def matches(self, headers: Headers) -> bool:
        value = headers.get(self.name)
        if value is None and self.missing_as_empty:
            value = ""
        if self.test is None:
            result = (value is not None) == self.present
        else:
            result = value is not None and self.test(value)
        return result != self.invert


@dataclass(frozen=True, slots=True)
class QueryMatch:
    name: str
    test: Callable[[str], bool] | None
    present: bool = True

    @classmethod
    def from_proto(cls, qm: Message, where: str) -> QueryMatch:
        check_fields(qm, ("name", "string_match", "present_match"), where)
        if qm.HasField("string_match"):
            return cls(qm.name, StringMatch.from_proto(qm.string_match, where).matches)
        return cls(qm.name, None, True)

    def matches(self, query: Mapping[str, str]) -> bool:
        value = query.get(self.name)
        if value is None:
            return False
        return self.test is None or self.test(value)


def parse_query(query: str) -> dict[str, str]:
    from urllib.parse import unquote_plus

    out: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out.setdefault(unquote_plus(k), unquote_plus(v))
    return out


_APPEND, _ADD_IF_ABSENT, _OVERWRITE_OR_ADD, _OVERWRITE_IF_EXISTS = 0, 1, 2, 3
_FORMATTER = re.compile(r"%[A-Z_]+(\([^)]*\))?%")


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """request/response_headers_to_add and _to_remove at one level of the route tree."""

    add: tuple[tuple[str, str, int], ...] = ()
    remove: tuple[str, ...] = ()

    @classmethod
    def from_protos(cls, to_add: list[Message], to_remove: list[str], where: str) -> HeaderOps:
        adds = []
        for hvo in to_add:
            check_fields(hvo, ("header", "append", "append_action", "keep_empty_value"), where)
            value = hvo.header.value if hvo.header.value else hvo.header.raw_value.decode("latin-1")
            if _FORMATTER.search(value.replace("%%", "")):
                raise Unsupported(f"{where}: header value formatter in {value!r} is not supported")
            value = value.replace("%%", "%")
            if hvo.HasField("append"):
                action = _APPEND if hvo.append.value else _OVERWRITE_OR_ADD
            else:
                action = hvo.append_action
            adds.append((hvo.header.key.lower(), value, action))
        return cls(tuple(adds), tuple(h.lower() for h in to_remove))

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)

    def apply(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Return a new header list with removals then additions applied (Envoy order)."""
        if self.remove:
            rm = self.remove
            headers = [(k, v) for k, v in headers if k not in rm]
        for name, value, action in self.add:
            exists = any(k == name for k, _ in headers)
            if action == _APPEND:
                headers = headers + [(name, value)]
            elif action == _ADD_IF_ABSENT:
                if not exists:
                    headers = headers + [(name, value)]
            elif action == _OVERWRITE_OR_ADD or (action == _OVERWRITE_IF_EXISTS and exists):
                headers = [(k, v) for k, v in headers if k != name] + [(name, value)]
        return headers
