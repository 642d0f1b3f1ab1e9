"""Building blocks of the invalid-document table: valid base documents and a patcher."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

DELETE = object()

VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]},
}
DR = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "reviews"},
    "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
}
GW = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "bookinfo-gateway"},
    "spec": {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
    },
}
SE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "ServiceEntry",
    "metadata": {"name": "external-api"},
    "spec": {
        "hosts": ["api.example.com"],
        "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
        "resolution": "DNS",
        "location": "MESH_EXTERNAL",
    },
}
WE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "WorkloadEntry",
    "metadata": {"name": "vm-1"},
    "spec": {"address": "10.0.0.7", "ports": {"http": 8080}, "labels": {"app": "ratings"}, "serviceAccount": "ratings"},
}
WG = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "WorkloadGroup",
    "metadata": {"name": "ratings"},
    "spec": {
        "metadata": {"labels": {"app": "ratings"}},
        "template": {"ports": {"http": 8080}, "serviceAccount": "ratings"},
        "probe": {"periodSeconds": 5, "httpGet": {"path": "/ready", "port": 8080}},
    },
}
SC = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "Sidecar",
    "metadata": {"name": "default"},
    "spec": {"egress": [{"hosts": ["./*", "istio-system/*"]}]},
}
PA = {
    "apiVersion": "security.istio.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "reviews"},
    "spec": {"selector": {"matchLabels": {"app": "reviews"}}, "mtls": {"mode": "STRICT"}},
}
RA = {
    "apiVersion": "security.istio.io/v1",
    "kind": "RequestAuthentication",
    "metadata": {"name": "jwt"},
    "spec": {
        "selector": {"matchLabels": {"app": "reviews"}},
        "jwtRules": [{"issuer": "https://issuer.example.com", "jwksUri": "https://issuer.example.com/jwks.json"}],
    },
}
AP = {
    "apiVersion": "security.istio.io/v1",
    "kind": "AuthorizationPolicy",
    "metadata": {"name": "reviews-viewer"},
    "spec": {
        "selector": {"matchLabels": {"app": "reviews"}},
        "action": "ALLOW",
        "rules": [
            {
                "from": [{"source": {"principals": ["cluster.local/ns/default/sa/productpage"]}}],
                "to": [{"operation": {"methods": ["GET"]}}],
            }
        ],
    },
}
TEL = {
    "apiVersion": "telemetry.istio.io/v1",
    "kind": "Telemetry",
    "metadata": {"name": "mesh-default"},
    "spec": {"selector": {"matchLabels": {"app": "reviews"}}, "metrics": [{"providers": [{"name": "prometheus"}]}]},
}
EF = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "EnvoyFilter",
    "metadata": {"name": "lua"},
    "spec": {
        "workloadSelector": {"labels": {"app": "reviews"}},
        "configPatches": [
            {
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "SIDECAR_INBOUND",
                    "listener": {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}},
                },
                "patch": {"operation": "INSERT_BEFORE", "value": {"name": "envoy.lua"}},
            }
        ],
    },
}
PC = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "ProxyConfig",
    "metadata": {"name": "per-workload"},
    "spec": {"selector": {"matchLabels": {"app": "reviews"}}, "concurrency": 2},
}
WASM = {
    "apiVersion": "extensions.istio.io/v1alpha1",
    "kind": "WasmPlugin",
    "metadata": {"name": "basic-auth"},
    "spec": {"selector": {"matchLabels": {"app": "reviews"}}, "url": "oci://ghcr.io/example/basic-auth:1.0", "phase": "AUTHN"},
}
SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "reviews", "labels": {"app": "reviews"}},
    "spec": {"ports": [{"port": 9080, "name": "http"}], "selector": {"app": "reviews"}},
}
DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "reviews-v1"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "reviews", "version": "v1"}},
        "template": {
            "metadata": {"labels": {"app": "reviews", "version": "v1"}},
            "spec": {
                "serviceAccountName": "bookinfo-reviews",
                "containers": [{"name": "reviews", "image": "x", "command": ["python3", "-m", "http.server", "9080"], "ports": [{"containerPort": 9080}]}],
            },
        },
    },
}
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "sleep"},
    "spec": {"containers": [{"name": "sleep", "command": ["sleep", "infinity"]}]},
}
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}

_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def _parts(path: str) -> list[str | int]:
    out: list[str | int] = []
    for name, key in _TOKEN.findall(path):
        if name:
            out.append(name)
        else:
            out.append(int(key) if key.isdigit() else key)
    return out


def patched(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with each `path: value` set (DELETE removes)."""
    doc = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, last = _parts(path)
        node: Any = doc
        for i, part in enumerate(parents):
            nxt = parents[i + 1] if i + 1 < len(parents) else last
            if isinstance(node, list):
                while len(node) <= part:  # type: ignore[operator]
                    node.append({})
                node = node[part]  # type: ignore[index]
            else:
                node = node.setdefault(part, [] if isinstance(nxt, int) else {})
        if value is DELETE:
            if isinstance(node, list):
                del node[last]  # type: ignore[arg-type]
            else:
                node.pop(last, None)
        elif isinstance(node, list):
            while len(node) <= last:  # type: ignore[operator]
                node.append(None)
            node[last] = copy.deepcopy(value)  # type: ignore[index]
        else:
            node[last] = copy.deepcopy(value)
    return doc


@dataclass(frozen=True)
class Case:
    id: str
    base: dict[str, Any]
    bad: dict[str, Any]
    good: dict[str, Any]
    path: str
    reason: str  # exact, or a prefix when it ends with "*"
    extra: dict[str, Any] = field(default_factory=dict)

    def matches(self, reason: str) -> bool:
        if self.reason.endswith("*"):
            return reason.startswith(self.reason[:-1])
        return reason == self.reason
