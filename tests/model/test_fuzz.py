"""Fuzzing the loader and validators: any input parses into resources or Issues, never an exception."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from model_strategies import _JSONISH, document  # noqa: E402

from ketch.model import KINDS, Issue, load_documents, load_text  # noqa: E402

FUZZ = settings(max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("kind_id", sorted(KINDS))
@FUZZ
@given(data=st.data())
def test_validation_of_well_typed_random_documents_never_raises(kind_id: str, data: st.DataObject) -> None:
    docs = data.draw(st.lists(document(kind_id), min_size=1, max_size=2))
    result = load_documents(docs, "fuzz")
    assert len(result.resources) + len({(i.kind, i.name) for i in result.errors}) >= 1 or result.warnings
    assert all(isinstance(i, Issue) and i.reason for i in result.errors + result.warnings)


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec", "items", "x"]), _JSONISH, max_size=5))
def test_arbitrary_mappings_never_raise(doc: dict) -> None:  # type: ignore[type-arg]
    result = load_documents([doc], "fuzz")
    assert all(isinstance(i, Issue) for i in result.errors + result.warnings)


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    result = load_text(text, "fuzz.yaml")
    assert all(isinstance(i, Issue) for i in result.errors + result.warnings)
