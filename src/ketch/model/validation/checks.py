"""Istio's field-level checks (pkg/config/validation/agent, labels, security), each returning
the reason Istio gives, or None when the value is fine."""

from __future__ import annotations

import ipaddress
import re

from ketch.model.duration import DurationError, parse
from ketch.model.validation.re2 import re2_error

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOST_LABEL = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_WILDCARD_LABEL = re.compile(r"^(\*|(\*|\*-)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_HEADER_NAME = re.compile(r"^[-_A-Za-z0-9]+$")
_HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# Istio's protocol.Parse vocabulary (case-insensitive)
PROTOCOLS = {"HTTP", "HTTP2", "HTTPS", "HTTP_PROXY", "GRPC", "GRPC-WEB", "TCP", "TLS", "UDP", "MONGO", "REDIS", "MYSQL"}
HTTP_PROTOCOLS = {"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB"}
TLS_PROTOCOLS = {"HTTPS", "TLS"}
TCP_PROTOCOLS = {"TCP", "HTTPS", "TLS", "MONGO", "REDIS", "MYSQL"}

RETRY_ON = {
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
    "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
    "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
    "unavailable",
}  # fmt: skip
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}
GRPC_STATUS = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}  # fmt: skip
# Go's http.StatusText: codes that name a status (retryOn accepts them)
HTTP_STATUS_CODES = {
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305,
    307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
    418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508,
    510, 511,
}  # fmt: skip


def is_dns1123_label(s: str) -> bool:
    return len(s) <= 63 and bool(_DNS1123_LABEL.match(s))


def is_dns1123_subdomain(s: str) -> bool:
    return len(s) <= 253 and bool(_DNS1123_SUBDOMAIN.match(s))


def port(n: int | None) -> str | None:
    if n is not None and 1 <= n <= 65535:
        return None
    return f"port number {n or 0} must be in the range 1..65535"


def duration(text: str | None) -> str | None:
    """Istio's ValidateDuration: a duration of at least 1ms, at ms precision."""
    if text is None:
        return None
    try:
        secs = parse(text)
    except DurationError:
        if isinstance(text, str) and re.fullmatch(r"-?\d+(\.\d+)?", text):
            return f'bad Duration: time: missing unit in duration "{text}"'
        return f'bad Duration: time: invalid duration "{text}"'
    if secs < 0.001 - 1e-12:
        return "duration must be greater than 1ms"
    if abs(round(secs * 1000) - secs * 1000) > 1e-6:
        return "only durations to ms precision are supported"
    return None


def regex(pattern: str, where: str) -> str | None:
    if len(pattern) > 1024:
        return f'"{where}": regex is too large, max length allowed is 1024'
    err = re2_error(pattern)
    if err:
        return f'"{where}": {err}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)'
    return None


def _dns_preconditions(name: str) -> str | None:
    if len(name) > 255:
        return f'domain name "{name}" too long (max 255)'
    if not name:
        return "empty domain name not allowed"
    return None


def _dns_labels(domain: str, whole: str | None = None) -> str | None:
    parts = domain.split(".")
    top = parts[-1]
    if top.isdigit():
        return f'domain name "{whole or domain}" invalid (top level domain "{top}" cannot be all-numeric)'
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return None
        if len(label) > 63 or not _HOST_LABEL.match(label):
            return f'domain name "{whole or domain}" invalid (label "{label}" invalid)'
    return None


def fqdn(name: str) -> str | None:
    return _dns_preconditions(name) or _dns_labels(name)


def wildcard_domain(domain: str) -> str | None:
    """A valid FQDN, allowing a wildcard in the first label (`*.example.com`, `*`)."""
    err = _dns_preconditions(domain)
    if err:
        return err
    first, _, rest = domain.partition(".")
    if len(first) > 63 or not _WILDCARD_LABEL.match(first):
        return f'domain name "{domain}" invalid (label "{first}" invalid)'
    if rest:
        return _dns_labels(rest, domain)
    return None


def partial_wildcard(host: str) -> str | None:
    if "*" in host and len(host) != 1 and not host.startswith("*."):
        return f'partial wildcard "{host}" not allowed'
    return None


def is_ip(addr: str) -> bool:
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        return False
    return True


def ip_address(addr: str) -> str | None:
    return None if is_ip(addr) else f"{addr} is not a valid IP"


def ip_subnet(subnet: str) -> str | None:
    if subnet.count("/") == 1:
        try:
            ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            return f"{subnet} is not a valid CIDR block"
        return None
    return ip_address(subnet)


def ip_or_cidr(value: str) -> str | None:
    """security.ValidateIPs: an IP or a CIDR range, as AuthorizationPolicy ipBlocks need."""
    if "/" in value:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            return f"bad CIDR range ({value}): {exc}"
        return None
    return None if is_ip(value) else f"bad IP address ({value})"


def label_key(key: str) -> str | None:
    parts = key.split("/")
    if len(parts) > 2 or not key:
        return f'invalid tag key: "{key}"'
    name = parts[-1]
    if len(parts) == 2 and not is_dns1123_subdomain(parts[0]):
        return f'invalid tag key: "{key}"'
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return f'invalid tag key: "{key}"'
    return None


def label_value(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return f'invalid tag value: "{value}"'
    return None


def header_name(name: str) -> str | None:
    if not name:
        return "header name cannot be empty"
    if not _HEADER_NAME.match(name):
        return f"header name {name} is not a valid header name"
    return None


def header_value(value: str) -> str | None:
    if _HEADER_VALUE_BAD.search(value):
        return f"header value configuration {value} is invalid"
    # Envoy's %VAR% substitution: a lone % must be escaped as %%
    stripped = re.sub(r"%%|%[A-Z_]+(\([^)]*\))?(:[^%]*)?%", "", value)
    if "%" in stripped:
        return f"header value configuration: invalid header configuration. Un-terminated variable expression '{value}'"
    return None


def header_operation_name(name: str, *, allow_authority: bool) -> str | None:
    """Headers a route may set/add/remove: no pseudo-headers, no Host (except via :authority rewrite)."""
    if not name:
        return "header name cannot be empty"
    lower = name.lower()
    is_authority = lower in (":authority", "host")
    if allow_authority and is_authority:
        return None
    if lower == "host":
        return f'invalid header "{name}": cannot set Host header'
    if name.startswith(":"):
        return f'invalid header "{name}": header cannot have ":" prefix'
    return None


def protocol(name: str | None) -> str | None:
    if name and name.upper() not in PROTOCOLS:
        return f"unsupported protocol: {name}"
    return None


def port_name(name: str | None) -> str | None:
    if not is_dns1123_label(name or ""):
        return f"invalid port name: {name or ''}"
    return None
