"""Golden files: each case's config → every resource each of its proxies gets, as
`json_format.MessageToDict` JSON. Refresh with `KETCH_UPDATE_GOLDEN=1` and review the diff
like code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from google.protobuf import json_format

from ketch.controlplane.translate import generate
from ketch.controlplane.translate.generator import CLUSTER, ENDPOINT, LISTENER, ROUTE
from ketch.controlplane.translate.testing import load_case

HERE = Path(__file__).resolve().parent
UPDATE = os.environ.get("KETCH_UPDATE_GOLDEN") == "1"
TYPES = {"listeners": LISTENER, "routes": ROUTE, "clusters": CLUSTER, "endpoints": ENDPOINT}
CASES = sorted(p.name for p in HERE.iterdir() if (p / "case.yaml").exists())


def _render(snapshot, proxy) -> dict:
    return {key: {name: json_format.MessageToDict(msg)
                  for name, msg in generate(snapshot, proxy, url).items()}
            for key, url in TYPES.items()}


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, samples_dir: Path) -> None:
    snapshot, proxies = load_case(HERE / case, samples_dir)
    assert proxies, f"{case}/case.yaml names no proxies"
    expected_dir = HERE / case / "expected"
    for name, proxy in proxies.items():
        got = _render(snapshot, proxy)
        path = expected_dir / f"{name}.json"
        if UPDATE:
            expected_dir.mkdir(exist_ok=True)
            path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
            continue
        assert path.exists(), f"missing {path}: run with KETCH_UPDATE_GOLDEN=1 and review"
        want = json.loads(path.read_text())
        for key in TYPES:
            assert sorted(got[key]) == sorted(want[key]), f"{case}/{name} {key} names differ"
            for res, body in want[key].items():
                assert got[key][res] == body, f"{case}/{name} {key} {res} differs"


def test_generation_is_deterministic(samples_dir: Path) -> None:
    a_snap, a = load_case(HERE / "features", samples_dir)
    b_snap, b = load_case(HERE / "features", samples_dir)
    for name in a:
        assert _render(a_snap, a[name]) == _render(b_snap, b[name])
