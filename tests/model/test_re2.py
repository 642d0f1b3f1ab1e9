"""The RE2 approximation: what Go's regexp (and Envoy) accept or refuse."""

from __future__ import annotations

import pytest

from ketch.model.validation.re2 import re2_error

ACCEPTED = [
    "^/api/v[0-9]+/.*$",
    "^/v1/(?P<id>[0-9]+)$",
    "^/v1/(?<id>[0-9]+)$",
    "(?i)^/Admin",
    "a(?i)bc",
    "\\pL+\\p{Greek}",
    "[(?=]x",
    "x\\z",
    "\\Qa.b\\E",
    "a{1000}",
    "(a|b)*c?",
]
REFUSED = [
    ("(?=a)b", "invalid or unsupported Perl syntax: `(?=`"),
    ("(?!a)b", "invalid or unsupported Perl syntax: `(?!`"),
    ("(?<=a)b", "invalid or unsupported Perl syntax: `(?<`"),
    ("(?<!a)b", "invalid or unsupported Perl syntax: `(?<`"),
    ("(?>a)", "invalid or unsupported Perl syntax: `(?>`"),
    ("(a)\\1", "invalid escape sequence: `\\1`"),
    ("(?P<x>a)(?P=x)", "invalid named capture: `(?P=`"),
    ("a++", "invalid nested repetition operator: `++`"),
    ("a{1001}", "invalid repeat count: `{1001}`"),
    ("a{3,2}", "invalid repeat count: `{3,2}`"),
    ("(abc", ""),
    ("[a-", ""),
]


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_accepted(pattern: str) -> None:
    assert re2_error(pattern) is None


@pytest.mark.parametrize(("pattern", "reason"), REFUSED)
def test_refused(pattern: str, reason: str) -> None:
    err = re2_error(pattern)
    assert err is not None and err.startswith("error parsing regexp: ")
    assert reason in err
