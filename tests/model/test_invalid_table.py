"""Istio's webhook rules, one invalid document per rule: the error names the field path and
Istio's reason, points at the field's line, and the same document with the field fixed passes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

import model_table_networking  # noqa: E402
import model_table_policy  # noqa: E402
from model_cases import Case, patched  # noqa: E402

from ketch.model import load_text  # noqa: E402

CASES: list[Case] = model_table_networking.ALL + model_table_policy.ALL


def test_table_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_document_is_rejected_with_path_and_reason(case: Case) -> None:
    text = yaml.safe_dump(patched(case.base, case.bad), sort_keys=False)
    result = load_text(text, "bad.yaml")
    assert result.resources == (), f"accepted: {text}"
    at_path = [i for i in result.errors if i.path == case.path]
    assert at_path, f"no error at {case.path}; got {[str(i) for i in result.errors]}"
    assert any(case.matches(i.reason) for i in at_path), f"reasons at {case.path}: {[i.reason for i in at_path]}"
    assert all(i.line >= 1 for i in at_path)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_document_made_valid_passes(case: Case) -> None:
    text = yaml.safe_dump(patched(case.base, case.good), sort_keys=False)
    result = load_text(text, "good.yaml")
    assert result.errors == (), [str(i) for i in result.errors]
    assert len(result.resources) == 1
