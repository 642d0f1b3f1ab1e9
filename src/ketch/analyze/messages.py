"""Istio's analysis message catalogue and the `Message` every analyzer returns.

Codes, names, levels and templates are Istio's (pkg/config/analysis/msg/messages.yaml);
templates keep Go's verbs (`%s %q %d %v %t`) so the wording is Istio's to the character,
and `render` formats them the way Go's fmt would for the argument types we pass.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any


class Level(enum.IntEnum):
    """Severity; a larger value is more severe, so thresholds compare with `>=`."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> "Level":
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown level {text!r} (want Error, Warning or Info)") from None


@dataclass(frozen=True)
class MessageType:
    code: str
    name: str
    level: Level
    template: str

    @property
    def url(self) -> str:
        return f"https://istio.io/latest/docs/reference/config/analysis/{self.code.lower()}/"


_E, _W, _I = Level.ERROR, Level.WARNING, Level.INFO

_TYPES = (
    MessageType("IST0002", "Deprecated", _W, "Deprecated: %s"),
    MessageType("IST0101", "ReferencedResourceNotFound", _E, "Referenced %s not found: %q"),
    MessageType("IST0106", "SchemaValidationError", _E, "Schema validation error: %v"),
    MessageType(
        "IST0109", "ConflictingMeshGatewayVirtualServiceHosts", _E,
        "The VirtualServices %s associated with mesh gateway define the same host %s which can lead "
        "to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a "
        "single resource.",
    ),
    MessageType(
        "IST0110", "ConflictingSidecarWorkloadSelectors", _E,
        "The Sidecars %v in namespace %q select the same workload pod %q, which can lead to undefined "
        "behavior.",
    ),
    MessageType(
        "IST0111", "MultipleSidecarsWithoutWorkloadSelectors", _E,
        "The Sidecars %v in namespace %q have no workload selector, which can lead to undefined behavior.",
    ),
    MessageType(
        "IST0112", "VirtualServiceDestinationPortSelectorRequired", _E,
        "This VirtualService routes to a service %q that exposes multiple ports %v. Specifying a port "
        "in the destination is required to disambiguate.",
    ),
    MessageType(
        "IST0116", "DeploymentAssociatedToMultipleServices", _W,
        "This deployment %s is associated with multiple services using port %d but different protocols: %v",
    ),
    MessageType(
        "IST0118", "PortNameIsNotUnderNamingConvention", _I,
        "Port name %s (port: %d, targetPort: %s) doesn't follow the naming convention of Istio port.",
    ),
    MessageType(
        "IST0127", "NoMatchingWorkloadsFound", _W,
        "No matching workloads for this resource with the following labels: %s",
    ),
    MessageType(
        "IST0128", "NoServerCertificateVerificationDestinationLevel", _W,
        "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to "
        "validate server identity for host: %s",
    ),
    MessageType(
        "IST0129", "NoServerCertificateVerificationPortLevel", _W,
        "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to "
        "validate server identity for host: %s at port %s",
    ),
    MessageType("IST0130", "VirtualServiceUnreachableRule", _W, "VirtualService rule %v not used (%s)."),
    MessageType(
        "IST0131", "VirtualServiceIneffectiveMatch", _I,
        "VirtualService rule %v match %v is not used (duplicate/overlapping match in rule %v).",
    ),
    MessageType(
        "IST0132", "VirtualServiceHostNotFoundInGateway", _W,
        "one or more host %v defined in VirtualService %s not found in Gateway %s.",
    ),
    MessageType(
        "IST0134", "ServiceEntryAddressesRequired", _W,
        "ServiceEntry addresses are required for this protocol.",
    ),
    MessageType(
        "IST0137", "DeploymentConflictingPorts", _W,
        "This deployment %s is associated with multiple services %v using targetPort %q but different "
        "ports: %v.",
    ),
    MessageType(
        "IST0145", "ConflictingGateways", _E,
        "Conflict with gateways %s (workload selector %s, port %s, hosts %v).",
    ),
    MessageType(
        "IST0149", "JwtClaimBasedRoutingWithoutRequestAuthN", _E,
        "The virtual service uses the JWT claim based routing (key: %s) but found no request "
        "authentication for the gateway (%s) pod (%s). The request authentication must first be "
        "applied for the gateway pods to validate the JWT token and make the claims available for "
        "routing.",
    ),
    MessageType(
        "IST0151", "EnvoyFilterUsesRelativeOperation", _W,
        "This EnvoyFilter does not have a priority and has a relative patch operation set which can "
        "cause the EnvoyFilter not to be applied. Using the INSERT_FIRST of ADD option or setting the "
        "priority may help in ensuring the EnvoyFilter is applied correctly.",
    ),
    MessageType(
        "IST0152", "EnvoyFilterUsesReplaceOperationIncorrectly", _E,
        "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.",
    ),
    MessageType(
        "IST0153", "EnvoyFilterUsesAddOperationIncorrectly", _E,
        "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.",
    ),
    MessageType(
        "IST0154", "EnvoyFilterUsesRemoveOperationIncorrectly", _E,
        "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.",
    ),
    MessageType(
        "IST0155", "EnvoyFilterUsesRelativeOperationWithProxyVersion", _W,
        "This EnvoyFilter does not have a priority and has a relative patch operation (NSTERT_BEFORE/AFTER, "
        "REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied "
        "during an upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in "
        "ensuring the EnvoyFilter is applied correctly.",
    ),
    MessageType(
        "IST0157", "InvalidTelemetryProvider", _W,
        "The Telemetry %v in namespace %q with empty providers will be ignored.",
    ),
    MessageType(
        "IST0159", "ConflictingTelemetryWorkloadSelectors", _E,
        "The Telemetries %v in namespace %q select the same workload pod %q, which can lead to "
        "undefined behavior.",
    ),
    MessageType(
        "IST0160", "MultipleTelemetriesWithoutWorkloadSelectors", _E,
        "The Telemetries %v in namespace %q have no workload selector, which can lead to undefined "
        "behavior.",
    ),
    MessageType(
        "IST0162", "GatewayPortNotDefinedOnService", _W,
        "The gateway is listening on a target port (port %d) that is not defined in the Service "
        "associated with its workload instances (Pod selector %s). If you need to access the gateway "
        "port through the gateway Service, it will not be available.",
    ),
    MessageType(
        "IST0165", "ReferencedInternalGateway", _W,
        "Gateway reference in VirtualService %s is to an implementation-generated internal Gateway: %s.",
    ),
    MessageType(
        "IST0173", "DestinationRuleSubsetNotSelectPods", _E,
        "The Subset %s defined in the DestinationRule does not select any pods. Which may lead to "
        "503 UH (NoHealthyUpstream).",
    ),
    MessageType(
        "IST0174", "UnknownDestinationRuleHost", _W,
        "The host %s defined in the DestinationRule does not match any services in the mesh.",
    ),
    # Istio 1.30 added this code; its exact template was not available to us, so the wording is
    # ours and carries the same arguments (resources, host, port, protocols).
    MessageType(
        "IST0177", "ConflictingServiceEntryProtocol", _W,
        "The ServiceEntries %s define the same host %s and port %d with conflicting protocols: %s.",
    ),
)

CATALOGUE: dict[str, MessageType] = {t.code: t for t in _TYPES}


def go_value(arg: Any, verb: str) -> str:
    """One argument formatted as Go's fmt would for the types analyzers pass."""
    if verb == "q":
        return json.dumps(str(arg), ensure_ascii=False)
    if isinstance(arg, bool):
        return "true" if arg else "false"
    if isinstance(arg, (list, tuple)):
        return "[" + " ".join(go_value(a, "v") for a in arg) + "]"
    return str(arg)


def render(template: str, *args: Any) -> str:
    """Substitute Go verbs in `template` with `args`, in order (`%%` is a literal %)."""
    out: list[str] = []
    it = iter(args)
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "%" and i + 1 < len(template):
            verb = template[i + 1]
            if verb == "%":
                out.append("%")
            else:
                out.append(go_value(next(it), verb))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True, order=True)
class ResourceRef:
    """Which resource a message is about: `Kind ns/name` (no namespace for cluster-scoped kinds)."""

    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Message:
    code: str
    level: Level
    resource: ResourceRef
    text: str
    file: str | None = None
    line: int | None = None

    @property
    def origin(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def type(self) -> MessageType:
        return CATALOGUE[self.code]

    def sort_key(self) -> tuple:
        # istioctl's order: most severe first, then code, origin, line, text.
        return (-self.level, self.code, str(self.resource), self.file or "", self.line or 0, self.text)

    def __str__(self) -> str:
        where = f"{self.resource} {self.origin}" if self.origin else str(self.resource)
        return f"{self.level.label} [{self.code}] ({where}) {self.text}"


def new_message(code: str, resource: ResourceRef, *args: Any, file: str | None = None,
                line: int | None = None) -> Message:
    mtype = CATALOGUE[code]
    return Message(code, mtype.level, resource, render(mtype.template, *args), file, line)
