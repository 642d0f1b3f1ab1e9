"""`ketch get pods|services` read the local runtime's state, as kubectl reads the cluster's."""

from __future__ import annotations

import time

from click.testing import CliRunner

from ketch.cli import main
from ketch.runtime.state import PodRecord, ServiceRecord, StateDir


def _state(tmp_path) -> StateDir:
    state = StateDir(tmp_path)
    state.ensure()
    state.write_pod(PodRecord(name="reviews-v1-abc12", namespace="default", deployment="reviews-v1",
                              ip="10.77.0.5", labels={"app": "reviews"}, phase="Running", ready=True,
                              restarts=2, pids={"reviews": 10, "sidecar": 11},
                              started_at=time.time() - 300))
    state.write_pod(PodRecord(name="istio-ingressgateway-x1", namespace="istio-system",
                              deployment="istio-ingressgateway", ip="10.77.0.9", phase="Pending"))
    state.write_services([ServiceRecord("reviews", "default", "10.96.3.4", ("http:9080->9080",))])
    return state


def test_get_pods_shows_ready_status_and_restarts(tmp_path, monkeypatch):
    _state(tmp_path)
    monkeypatch.setenv("KETCH_RUNTIME_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["get", "pods"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[:4] == ["NAME", "READY", "STATUS", "RESTARTS"]
    assert len(rows) == 1  # only namespace default
    cells = rows[0].split()
    assert cells[:4] == ["reviews-v1-abc12", "2/2", "Running", "2"]
    assert cells[4].startswith("5m")  # AGE, kubectl's way (5m, or 5m1s a second later)

    result = CliRunner().invoke(main, ["get", "pods", "-A"])
    names = [line.split()[1] for line in result.output.splitlines()[1:]]
    assert sorted(names) == ["istio-ingressgateway-x1", "reviews-v1-abc12"]


def test_get_missing_pod_is_not_found(tmp_path, monkeypatch):
    _state(tmp_path)
    monkeypatch.setenv("KETCH_RUNTIME_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["get", "pod", "nope"])
    assert result.exit_code == 1
    assert 'pods "nope" not found' in result.output


def test_get_services_shows_the_vip(tmp_path, monkeypatch):
    _state(tmp_path)
    monkeypatch.setenv("KETCH_RUNTIME_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["get", "services"])
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[1].split()
    assert row[0] == "reviews" and "10.96.3.4" in row and "9080/TCP" in row
