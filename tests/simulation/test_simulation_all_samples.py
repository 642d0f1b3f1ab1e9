"""Smoke: every Istio sample file, on top of its app's platform manifests, translates for a
sidecar, a router and a proxyless client, and the proxy compiles all of it (no NACK)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketch.controlplane.snapshot import Snapshot
from ketch.controlplane.translate import generate
from ketch.controlplane.translate.generator import TYPE_URLS
from ketch.controlplane.translate.testing import load_configs, proxy
from sim_harness import Simulation

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "istio-samples"
PLATFORM = {"bookinfo": "bookinfo/platform/bookinfo.yaml", "httpbin": "httpbin/httpbin.yaml",
            "tcp-echo": "tcp-echo/tcp-echo-services.yaml"}
FILES = sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*.yaml")
               if "gateway-api" not in p.parts) if SAMPLES.is_dir() else []


@pytest.mark.parametrize("sample", FILES)
def test_sample_translates_and_compiles(samples_dir: Path, sample: str) -> None:
    app = sample.split("/")[0]
    texts = [(samples_dir / PLATFORM[app]).read_text()] if app in PLATFORM else []
    if sample != PLATFORM.get(app):
        texts.append((samples_dir / sample).read_text())
    try:
        configs = load_configs("\n---\n".join(texts))
    except ValueError as exc:  # the model rejects it: nothing to translate
        pytest.skip(f"not loadable: {exc}")
    snap = Snapshot.build(configs)
    for node in (proxy(labels={"app": "client"}),
                 proxy("istio-system", {"istio": "ingressgateway"}, kind="router"),
                 proxy(labels={"app": "productpage", "version": "v1"})):
        Simulation(snap, node)  # compiles every listener, route and cluster
    grpc = proxy(generator="grpc")
    for url in TYPE_URLS:
        generate(snap, grpc, url)
