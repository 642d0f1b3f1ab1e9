"""Does a regex compile under RE2, the engine Envoy (and Istio's Go validation) uses?

Python's `re` accepts constructs RE2 rejects (lookaround, backreferences, atomic groups,
conditionals); those are refused first, with Go's wording. What is left is compiled with
`re` after rewriting the few RE2-only spellings Python lacks (\\pL, \\z, \\Q..\\E, inline
flags mid-pattern).
"""

from __future__ import annotations

import re

_UNSUPPORTED = (
    ("(?=", "invalid or unsupported Perl syntax: `(?=`"),
    ("(?!", "invalid or unsupported Perl syntax: `(?!`"),
    ("(?<=", "invalid or unsupported Perl syntax: `(?<`"),
    ("(?<!", "invalid or unsupported Perl syntax: `(?<`"),
    ("(?>", "invalid or unsupported Perl syntax: `(?>`"),
    ("(?(", "invalid or unsupported Perl syntax: `(?(`"),
    ("(?#", "invalid or unsupported Perl syntax: `(?#`"),
    ("(?P=", "invalid named capture: `(?P=`"),
)
_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*(\\[1-9]|\\k<|\\g)")
_POSSESSIVE = re.compile(r"(?<!\\)[*+?}][+]")
_UNICODE_CLASS = re.compile(r"\\[pP](\{\^?\w+\}|\w)")
_QUOTED = re.compile(r"\\Q(.*?)(\\E|$)", re.S)
_INLINE_FLAGS = re.compile(r"\(\?([imsU]+)\)")
_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


def _strip_classes(pattern: str) -> str:
    """Blank out [...] character classes so `(?=` inside a class is not mistaken for lookahead."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append("[x]")
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def re2_error(pattern: str) -> str | None:
    """Go's `regexp` error for `pattern`, or None when RE2 accepts it."""
    bare = _strip_classes(pattern)
    for token, reason in _UNSUPPORTED:
        if token in bare:
            return f"error parsing regexp: {reason}"
    m = _BACKREF.search(bare)
    if m:
        return f"error parsing regexp: invalid escape sequence: `{m.group(1)}`"
    m = _POSSESSIVE.search(bare)
    if m:
        return f"error parsing regexp: invalid nested repetition operator: `{m.group(0)}`"
    for rm in _REPEAT.finditer(bare):
        low = int(rm.group(1))
        high = int(rm.group(3)) if rm.group(3) else low
        if low > 1000 or high > 1000:
            return f"error parsing regexp: invalid repeat count: `{rm.group(0)}`"
        if rm.group(3) and high < low:
            return f"error parsing regexp: invalid repeat count: `{rm.group(0)}`"
    py = _QUOTED.sub(lambda q: re.escape(q.group(1)), pattern)
    py = _UNICODE_CLASS.sub("x", py).replace("\\z", "\\Z").replace("\\C", ".")
    py = _NAMED_GROUP.sub("(?P<", py)  # Go (RE2 syntax since Go 1.22) accepts (?<name>...)
    py = _INLINE_FLAGS.sub(lambda f: f.group(0) if f.start() == 0 else "", py.replace("U)", ")"))
    try:
        re.compile(py)
    except re.error as exc:
        return f"error parsing regexp: {exc.msg}: `{pattern}`"
    except (OverflowError, RecursionError):
        return f"error parsing regexp: expression too large: `{pattern}`"
    return None
