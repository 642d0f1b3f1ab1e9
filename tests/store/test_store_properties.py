"""Properties over random operation sequences: a FileStore reopened equals the MemoryStore
that saw the same operations, and replaying the watch rebuilds the store's contents."""

from __future__ import annotations

import functools
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import vs

from ketch.store import ChangeType, FileStore, MemoryStore

NAMES = ("a", "b", "c")


@functools.lru_cache(maxsize=None)
def resource(name: str, weight: int):
    return vs(name, w1=weight)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("apply"), st.lists(
            st.tuples(st.sampled_from(NAMES), st.sampled_from((0, 50, 100))), min_size=1, max_size=3)),
        st.tuples(st.just("delete"), st.sampled_from(NAMES)),
        st.tuples(st.just("compact"), st.none()),
    ),
    max_size=12,
)


def state(store):
    return [(r.key, r.metadata.resource_version, r.metadata.generation, r.spec) for r in store.list()]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_file_store_replays_to_the_memory_store(operations):
    memory = MemoryStore(clock=lambda: 0.0)
    seen = []
    memory.subscribe(seen.append)
    with tempfile.TemporaryDirectory() as d:
        with FileStore(d, clock=lambda: 0.0, compact_every=4) as file:
            for op, arg in operations:
                for store in (memory, file):
                    if op == "apply":
                        store.apply([resource(n, w) for n, w in arg])
                    elif op == "delete":
                        store.delete("VirtualService", "default", arg)
                    elif store is file:
                        file.compact()
            assert state(file) == state(memory)
        with FileStore(d, clock=lambda: 0.0) as reopened:
            assert state(reopened) == state(memory)
            assert reopened.revision == memory.revision

    rebuilt = {}
    for change in seen:
        if change.type is ChangeType.DELETED:
            del rebuilt[change.key]
        else:
            rebuilt[change.key] = change.resource
    assert sorted(rebuilt.values(), key=lambda r: r.key) == memory.list()
    assert [c.revision for c in seen] == list(range(1, memory.revision + 1))
