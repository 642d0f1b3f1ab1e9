"""Analyzers: pure functions from an `AnalysisContext` to messages.

Each module mirrors one of Istio's analyzer packages (pkg/config/analysis/analyzers/...).
`ALL` lists them in the order istioctl runs its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ketch.analyze.analyzers import (
    authz,
    deployment,
    deprecation,
    destinationrule,
    envoyfilter,
    gateway,
    service,
    serviceentry,
    sidecar,
    telemetry,
    virtualservice,
)
from ketch.analyze.context import AnalysisContext
from ketch.analyze.messages import Message


@dataclass(frozen=True)
class Analyzer:
    name: str
    description: str
    run: Callable[[AnalysisContext], Iterable[Message]]


ALL: tuple[Analyzer, ...] = (
    Analyzer("auth.AuthorizationPoliciesAnalyzer", "Checks the validity of authorization policies",
             authz.authorization_policies),
    Analyzer("deployment.MultiServiceAnalyzer", "Checks association between services and pods",
             deployment.service_association),
    Analyzer("deprecation.DeprecationAnalyzer", "Checks for deprecated Istio types and fields",
             deprecation.deprecated_fields),
    Analyzer("destinationrule.CaCertificateAnalyzer",
             "Checks if caCertificates is set when TLS mode is SIMPLE/MUTUAL", destinationrule.ca_certificates),
    Analyzer("destinationrule.SubsetSelectPodAnalyzer",
             "Checks if the host exists and pods are selected by subsets in destination rules",
             destinationrule.subsets_select_pods),
    Analyzer("envoyfilter.EnvoyPatchAnalyzer", "Checks an envoyFilter's patch operations", envoyfilter.patches),
    Analyzer("gateway.IngressGatewayPortAnalyzer",
             "Checks a gateway's selector and ports against the gateway's Kubernetes service ports",
             gateway.ingress_gateway_ports),
    Analyzer("gateway.ConflictingGatewayAnalyzer", "Checks a gateway's selector, port number and hosts",
             gateway.conflicting_gateways),
    Analyzer("service.PortNameAnalyzer", "Checks the port names associated with each service",
             service.port_names),
    Analyzer("serviceentry.Analyzer", "Checks the validity of ServiceEntry", serviceentry.protocol_addresses),
    Analyzer("serviceentry.ConflictingServiceEntryProtocolAnalyzer",
             "Checks if multiple ServiceEntries define the same host and port with different protocols",
             serviceentry.conflicting_protocols),
    Analyzer("sidecar.SelectorAnalyzer",
             "Validates that sidecars that define a workload selector match at least one pod, and that "
             "there aren't multiple sidecar resources that select overlapping pods", sidecar.selectors),
    Analyzer("sidecar.DefaultSelectorAnalyzer",
             "Validates that there aren't multiple sidecar resources that have no selector",
             sidecar.default_selectors),
    Analyzer("telemetry.ProviderAnalyzer", "Validates that providers in telemetry resource is valid",
             telemetry.providers),
    Analyzer("telemetry.SelectorAnalyzer",
             "Validates that telemetries that define a selector match at least one pod, and that there "
             "aren't multiple telemetry resources that select overlapping pods", telemetry.selectors),
    Analyzer("telemetry.DefaultSelectorAnalyzer",
             "Validates that there aren't multiple telemetry resources that have no selector",
             telemetry.default_selectors),
    Analyzer("virtualservice.ConflictingMeshGatewayHostsAnalyzer",
             "Checks if multiple virtual services associated with the mesh gateway have conflicting hosts",
             virtualservice.conflicting_mesh_gateway_hosts),
    Analyzer("virtualservice.DestinationHostAnalyzer",
             "Checks the destination hosts associated with each virtual service", virtualservice.destination_hosts),
    Analyzer("virtualservice.DestinationRuleAnalyzer",
             "Checks the destination rules associated with each virtual service",
             virtualservice.destination_rules),
    Analyzer("virtualservice.GatewayAnalyzer", "Checks the gateways associated with each virtual service",
             virtualservice.gateways),
    Analyzer("virtualservice.JWTClaimRouteAnalyzer",
             "Checks the VirtualService using JWT claim based routing has corresponding RequestAuthentication",
             virtualservice.jwt_claim_routes),
    Analyzer("virtualservice.UnreachableRulesAnalyzer",
             "Checks for VirtualService rules and matches that earlier ones shadow (webhook warnings)",
             virtualservice.unreachable_rules),
)
