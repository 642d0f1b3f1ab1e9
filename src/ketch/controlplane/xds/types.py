"""xDS type URLs and the orders Envoy expects them in."""

from __future__ import annotations

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

SHORT_NAMES: dict[str, str] = {
    LISTENER: "LDS",
    ROUTE: "RDS",
    CLUSTER: "CDS",
    ENDPOINT: "EDS",
    SECRET: "SDS",
}

# Envoy's warming rules: clusters warm on their endpoints, listeners on their routes, so a
# push sends CDS before EDS and LDS before RDS (Istio's PushOrder).
PUSH_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)

# In state of the world, a response for these types is the full set: a resource left out is
# deleted. An empty subscription means "everything" (wildcard). RDS/EDS responses may carry
# only the resources that changed, and an empty subscription means "nothing".
FULL_STATE_TYPES: frozenset[str] = frozenset({LISTENER, CLUSTER})


def short_name(type_url: str) -> str:
    return SHORT_NAMES.get(type_url, type_url.rsplit(".", 1)[-1])


def push_rank(type_url: str) -> int:
    try:
        return PUSH_ORDER.index(type_url)
    except ValueError:
        return len(PUSH_ORDER)
