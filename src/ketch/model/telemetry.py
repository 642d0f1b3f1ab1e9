"""Telemetry (telemetry.istio.io): tracing, metrics and access logging."""

from __future__ import annotations

from typing import Literal

from ketch.model.base import Spec
from ketch.model.common import (
    Duration,
    PolicyTargetReference,
    TypeWorkloadSelector,
)

WorkloadMode = Literal["CLIENT_AND_SERVER", "CLIENT", "SERVER"]


class ProviderRef(Spec):
    name: str | None = None


class TracingSelector(Spec):
    mode: WorkloadMode | None = None


class Literal_(Spec):
    value: str | None = None


class Environment(Spec):
    name: str | None = None
    default_value: str | None = None


class RequestHeader(Spec):
    name: str | None = None
    default_value: str | None = None


class CustomTag(Spec):
    literal: Literal_ | None = None
    environment: Environment | None = None
    header: RequestHeader | None = None


class Tracing(Spec):
    match: TracingSelector | None = None
    providers: tuple[ProviderRef, ...] = ()
    random_sampling_percentage: float | None = None
    disable_span_reporting: bool | None = None
    custom_tags: dict[str, CustomTag] = {}
    use_request_id_for_trace_sampling: bool | None = None
    enable_istio_tags: bool | None = None
    disable_context_propagation: bool | None = None


MetricName = Literal[
    "ALL_METRICS",
    "REQUEST_COUNT",
    "REQUEST_DURATION",
    "REQUEST_SIZE",
    "RESPONSE_SIZE",
    "TCP_OPENED_CONNECTIONS",
    "TCP_CLOSED_CONNECTIONS",
    "TCP_SENT_BYTES",
    "TCP_RECEIVED_BYTES",
    "GRPC_REQUEST_MESSAGES",
    "GRPC_RESPONSE_MESSAGES",
]


class MetricSelector(Spec):
    metric: MetricName | None = None
    custom_metric: str | None = None
    mode: WorkloadMode | None = None


class TagOverride(Spec):
    operation: Literal["UPSERT", "REMOVE"] | None = None
    value: str | None = None


class MetricsOverrides(Spec):
    match: MetricSelector | None = None
    disabled: bool | None = None
    tag_overrides: dict[str, TagOverride] = {}


class Metrics(Spec):
    providers: tuple[ProviderRef, ...] = ()
    overrides: tuple[MetricsOverrides, ...] = ()
    reporting_interval: Duration | None = None


class LogSelector(Spec):
    mode: WorkloadMode | None = None


class Filter(Spec):
    expression: str | None = None


class AccessLogging(Spec):
    match: LogSelector | None = None
    providers: tuple[ProviderRef, ...] = ()
    disabled: bool | None = None
    filter: Filter | None = None


class Telemetry(Spec):
    selector: TypeWorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    tracing: tuple[Tracing, ...] = ()
    metrics: tuple[Metrics, ...] = ()
    access_logging: tuple[AccessLogging, ...] = ()
