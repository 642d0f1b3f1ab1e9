"""PeerAuthentication, RequestAuthentication, AuthorizationPolicy (security.istio.io)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ketch.model.base import Spec
from ketch.model.common import (
    Duration,
    PolicyTargetReference,
    TypeWorkloadSelector,
    UInt32,
)

MtlsMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]


class MutualTLS(Spec):
    mode: MtlsMode | None = None


class PeerAuthentication(Spec):
    selector: TypeWorkloadSelector | None = None
    mtls: MutualTLS | None = None
    port_level_mtls: dict[UInt32, MutualTLS] = {}


class JWTHeader(Spec):
    name: str | None = None
    prefix: str | None = None


class ClaimToHeader(Spec):
    header: str | None = None
    claim: str | None = None


class JWTRule(Spec):
    issuer: str | None = None
    audiences: tuple[str, ...] = ()
    jwks_uri: str | None = None
    jwks: str | None = None
    from_headers: tuple[JWTHeader, ...] = ()
    from_params: tuple[str, ...] = ()
    output_payload_to_header: str | None = None
    from_cookies: tuple[str, ...] = ()
    forward_original_token: bool | None = None
    output_claim_to_headers: tuple[ClaimToHeader, ...] = ()
    timeout: Duration | None = None


class RequestAuthentication(Spec):
    selector: TypeWorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    jwt_rules: tuple[JWTRule, ...] = ()


class Source(Spec):
    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    request_principals: tuple[str, ...] = ()
    not_request_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    not_service_accounts: tuple[str, ...] = ()
    ip_blocks: tuple[str, ...] = ()
    not_ip_blocks: tuple[str, ...] = ()
    remote_ip_blocks: tuple[str, ...] = ()
    not_remote_ip_blocks: tuple[str, ...] = ()


class Operation(Spec):
    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    not_ports: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()


class RuleFrom(Spec):
    source: Source | None = None


class RuleTo(Spec):
    operation: Operation | None = None


class Condition(Spec):
    key: str | None = None
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


class Rule(Spec):
    from_: tuple[RuleFrom, ...] = Field(default=(), alias="from")
    to: tuple[RuleTo, ...] = ()
    when: tuple[Condition, ...] = ()


class ExtensionProvider(Spec):
    name: str | None = None


class AuthorizationPolicy(Spec):
    selector: TypeWorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    rules: tuple[Rule, ...] = ()
    action: Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"] | None = None
    provider: ExtensionProvider | None = None
