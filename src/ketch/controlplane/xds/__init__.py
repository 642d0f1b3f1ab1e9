"""Serving xDS: the ADS server, the push debouncer and the per-proxy status it keeps."""

from __future__ import annotations

from ketch.controlplane.xds.ads import XdsServer
from ketch.controlplane.xds.debounce import Debouncer, PushLoop, PushRequest
from ketch.controlplane.xds.metrics import XdsMetrics

__all__ = ["Debouncer", "PushLoop", "PushRequest", "XdsMetrics", "XdsServer"]
