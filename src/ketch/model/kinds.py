"""The kinds Ketch knows: API group, served versions, scope, spec class, enforcement."""

from __future__ import annotations

from dataclasses import dataclass

from ketch.model import extensions, gatewayapi, kube, networking, security, telemetry
from ketch.model.base import Spec
from ketch.model.virtualservice import VirtualService

NETWORKING = "networking.istio.io"
SECURITY = "security.istio.io"
TELEMETRY = "telemetry.istio.io"
EXTENSIONS = "extensions.istio.io"
GATEWAY_API = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class KindInfo:
    group: str  # "" for the Kubernetes core group
    versions: tuple[str, ...]
    namespaced: bool
    spec_type: type[Spec]
    enforced: bool = True  # False: accepted and stored, but the mesh does not act on it yet
    kind: str = ""  # the `kind:` written in YAML (differs from the KINDS key only for Gateway API's Gateway)
    spec_field: str | None = "spec"  # None: the kind's fields sit at the top level (ServiceAccount)

    def api_versions(self) -> tuple[str, ...]:
        return tuple(f"{self.group}/{v}" if self.group else v for v in self.versions)


_NET = ("v1", "v1beta1", "v1alpha3")
_SEC = ("v1", "v1beta1")
_TEL = ("v1", "v1alpha1")
_GW = ("v1", "v1beta1", "v1alpha2")


def _table() -> dict[str, KindInfo]:
    rows = {
        "VirtualService": KindInfo(NETWORKING, _NET, True, VirtualService),
        "DestinationRule": KindInfo(NETWORKING, _NET, True, networking.DestinationRule),
        "Gateway": KindInfo(NETWORKING, _NET, True, networking.Gateway),
        "ServiceEntry": KindInfo(NETWORKING, _NET, True, networking.ServiceEntry),
        "Sidecar": KindInfo(NETWORKING, _NET, True, networking.Sidecar),
        "WorkloadEntry": KindInfo(NETWORKING, _NET, True, networking.WorkloadEntry),
        "WorkloadGroup": KindInfo(NETWORKING, _NET, True, networking.WorkloadGroup),
        "EnvoyFilter": KindInfo(NETWORKING, ("v1alpha3",), True, extensions.EnvoyFilter, enforced=False),
        "ProxyConfig": KindInfo(NETWORKING, ("v1beta1",), True, extensions.ProxyConfig, enforced=False),
        "PeerAuthentication": KindInfo(SECURITY, _SEC, True, security.PeerAuthentication),
        "RequestAuthentication": KindInfo(SECURITY, _SEC, True, security.RequestAuthentication),
        "AuthorizationPolicy": KindInfo(SECURITY, _SEC, True, security.AuthorizationPolicy),
        "Telemetry": KindInfo(TELEMETRY, _TEL, True, telemetry.Telemetry),
        "WasmPlugin": KindInfo(EXTENSIONS, ("v1alpha1",), True, extensions.WasmPlugin, enforced=False),
        "Namespace": KindInfo("", ("v1",), False, kube.NamespaceSpec),
        "Service": KindInfo("", ("v1",), True, kube.ServiceSpec),
        "ServiceAccount": KindInfo("", ("v1",), True, kube.ServiceAccountSpec, spec_field=None),
        "Pod": KindInfo("", ("v1",), True, kube.PodSpec),
        "Deployment": KindInfo("apps", ("v1",), True, kube.DeploymentSpec),
        # Gateway API: loaded and stored, not translated yet.
        GATEWAY_API_GATEWAY: KindInfo(GATEWAY_API, _GW, True, gatewayapi.GatewaySpec, enforced=False, kind="Gateway"),
        "GatewayClass": KindInfo(GATEWAY_API, _GW, False, gatewayapi.GatewayClassSpec, enforced=False),
        "HTTPRoute": KindInfo(GATEWAY_API, _GW, True, gatewayapi.RouteSpec, enforced=False),
        "GRPCRoute": KindInfo(GATEWAY_API, _GW, True, gatewayapi.RouteSpec, enforced=False),
        "TCPRoute": KindInfo(GATEWAY_API, ("v1alpha2",), True, gatewayapi.RouteSpec, enforced=False),
        "TLSRoute": KindInfo(GATEWAY_API, ("v1alpha2",), True, gatewayapi.RouteSpec, enforced=False),
        "UDPRoute": KindInfo(GATEWAY_API, ("v1alpha2",), True, gatewayapi.RouteSpec, enforced=False),
        "ReferenceGrant": KindInfo(GATEWAY_API, ("v1beta1", "v1alpha2"), True, gatewayapi.ReferenceGrantSpec, enforced=False),
    }
    out: dict[str, KindInfo] = {}
    for key, info in rows.items():
        if not info.kind:
            info = KindInfo(info.group, info.versions, info.namespaced, info.spec_type, info.enforced, key, info.spec_field)
        out[key] = info
    return out


# Istio's Gateway and the Gateway API's Gateway share a kind name; the latter is keyed by
# its qualified name (as `kubectl get gateways.gateway.networking.k8s.io` spells it) so both
# can live in one store.
GATEWAY_API_GATEWAY = "Gateway.gateway.networking.k8s.io"

KINDS: dict[str, KindInfo] = _table()

_BY_GROUP_KIND = {(info.group, info.kind): key for key, info in KINDS.items()}


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def kind_id(api_version: str, kind: str) -> str | None:
    """The KINDS key of (apiVersion, kind), or None when the kind is unknown."""
    return _BY_GROUP_KIND.get((group_of(api_version), kind))
