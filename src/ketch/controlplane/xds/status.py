"""What the REST app shows of each connection: sync status per type and a config dump.

The dump is built from what was last *sent* (the bytes on the wire), in the shape of Envoy's
admin `/config_dump`, so `ketch proxy-config` reads like `istioctl proxy-config`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from envoy.admin.v3 import config_dump_pb2 as cd
from envoy.admin.v3 import config_dump_shared_pb2 as cds
from google.protobuf import json_format
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.timestamp_pb2 import Timestamp

from ketch.controlplane.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE, short_name

if TYPE_CHECKING:
    from ketch.controlplane.xds.connection import Connection
    from ketch.controlplane.xds.watch import Watch


def _iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def proxy_status(conn: Connection) -> dict:
    proxy = conn.proxy
    ptype = getattr(proxy, "type", "")
    return {
        "id": conn.node_id,
        "connectionId": conn.id,
        "type": getattr(ptype, "value", str(ptype)),
        "namespace": getattr(proxy, "namespace", ""),
        "connectedAt": _iso(conn.connected_at),
        "version": conn.version,
        "types": {
            type_url: {
                "type": short_name(type_url),
                "status": w.status.value,
                "versionSent": w.version_sent,
                "versionAcked": w.version_acked,
                "nonceSent": w.nonce_sent,
                "nonceAcked": w.nonce_acked,
                "error": w.error or None,
                "resources": len(w.sent),
                "subscribed": "*" if w.wildcard else sorted(w.names),
            }
            for type_url, w in sorted(conn.watches.items())
        },
    }


def _stamp(wall: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(wall * 1e9))
    return ts


def _any(resource: object) -> AnyProto:
    return AnyProto(type_url=resource.type_url, value=resource.body)  # type: ignore[attr-defined]


def _resources(watch: Watch | None) -> list:
    return [watch.sent[n] for n in sorted(watch.sent)] if watch else []


def config_dump(conn: Connection) -> dict:
    """Envoy's admin ConfigDump (as JSON) of the resources last sent on this connection."""
    w = conn.watches.get
    listeners = cds.ListenersConfigDump(version_info=_version(w(LISTENER)))
    for r in _resources(w(LISTENER)):
        listeners.dynamic_listeners.add(name=r.name, active_state=cds.ListenersConfigDump.DynamicListenerState(
            version_info=w(LISTENER).version_sent, listener=_any(r), last_updated=_stamp(w(LISTENER).sent_at)))
    clusters = cds.ClustersConfigDump(version_info=_version(w(CLUSTER)))
    for r in _resources(w(CLUSTER)):
        clusters.dynamic_active_clusters.add(version_info=w(CLUSTER).version_sent, cluster=_any(r),
                                             last_updated=_stamp(w(CLUSTER).sent_at))
    routes = cds.RoutesConfigDump()
    for r in _resources(w(ROUTE)):
        routes.dynamic_route_configs.add(version_info=w(ROUTE).version_sent, route_config=_any(r),
                                         last_updated=_stamp(w(ROUTE).sent_at))
    endpoints = cds.EndpointsConfigDump()
    for r in _resources(w(ENDPOINT)):
        endpoints.dynamic_endpoint_configs.add(version_info=w(ENDPOINT).version_sent,
                                               endpoint_config=_any(r),
                                               last_updated=_stamp(w(ENDPOINT).sent_at))
    dump = cd.ConfigDump()
    for section in (listeners, clusters, routes, endpoints):
        dump.configs.add().Pack(section)
    try:
        return json_format.MessageToDict(dump)
    except (TypeError, KeyError):
        # A nested Any of a type this process never imported: fall back to one level.
        return {"configs": [_shallow(s) for s in (listeners, clusters, routes, endpoints)]}


def _version(watch: Watch | None) -> str:
    return watch.version_sent if watch else ""


def _shallow(section: object) -> dict:
    out = {"@type": "type.googleapis.com/" + section.DESCRIPTOR.full_name}  # type: ignore[attr-defined]
    out["error"] = "a resource holds a type this control plane cannot render"
    return out
