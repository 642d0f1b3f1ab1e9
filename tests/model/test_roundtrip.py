"""Hypothesis round trip: generated configs -> dump_yaml -> load -> equal resources."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from model_strategies import document  # noqa: E402

from ketch.model import KINDS, dump_yaml, load_documents, load_text  # noqa: E402


@pytest.mark.parametrize("kind_id", sorted(KINDS))
@settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_dump_then_load_gives_equal_resources(kind_id: str, data: st.DataObject) -> None:
    docs = data.draw(st.lists(document(kind_id), min_size=1, max_size=3))
    first = load_documents(docs, "generated", validate=False)
    assert first.errors == (), [str(e) for e in first.errors]
    text = dump_yaml(first.resources)
    again = load_text(text, "dumped.yaml", validate=False)
    assert again.errors == (), [str(e) for e in again.errors]
    assert again.resources == first.resources
    assert [r.to_dict() for r in again.resources] == [r.to_dict() for r in first.resources]
