"""Gateway, ServiceEntry, WorkloadEntry, WorkloadGroup and Sidecar rules (istiod's webhook)."""

from __future__ import annotations

from ketch.model.common import Port, ServerTLSSettings
from ketch.model.networking import Gateway, Server, ServiceEntry, Sidecar, WorkloadEntry, WorkloadGroup
from ketch.model.resource import Resource
from ketch.model.validation import checks
from ketch.model.validation.context import Ctx
from ketch.model.validation.destinationrule import connection_pool, workload_selector
from ketch.model.validation.paths import Path
from ketch.model.validation.routing import destination, export_to

UNIX = "unix://"


def unix_address(addr: str) -> str | None:
    if not addr:
        return "unix address must not be empty"
    if addr.startswith("@"):
        return None
    if not addr.startswith("/") or addr.endswith("/"):
        return f"{addr} is not an absolute path to a file"
    return None


# ---- Gateway ---------------------------------------------------------------------------


def validate_gateway(resource: Resource, ctx: Ctx) -> None:
    gw: Gateway = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    if not checks.is_dns1123_label(resource.name):
        ctx.error("metadata.name", f'invalid gateway name: "{resource.name}"')
    if not gw.servers:
        ctx.error(spec / "servers", "gateway must have at least one server")
    port_names: set[str] = set()
    for i, server in enumerate(gw.servers):
        p = spec / "servers" / i
        _server(ctx, p, server)
        if server.port is not None:
            name = server.port.name or ""
            if name in port_names:
                ctx.error(p / "port" / "name", f"port names in servers must be unique: duplicate name {name}")
            port_names.add(name)
            proto = (server.port.protocol or "").upper()
            if proto not in checks.HTTP_PROTOCOLS and server.tls is not None and server.tls.https_redirect:
                ctx.warn(p / "tls" / "httpsRedirect", "tls.httpsRedirect should only be used with http servers")


def _server(ctx: Ctx, path: Path, server: Server) -> None:
    if not server.hosts:
        ctx.error(path / "hosts", "server config must contain at least one host")
    for i, host in enumerate(server.hosts):
        for reason in namespace_slash_host(host, gateway=True):
            ctx.error(path / "hosts" / i, reason)
    bind = server.bind or ""
    port_ok = True
    if server.port is None:
        ctx.error(path / "port", "port is required")
        port_ok = False
    else:
        pp = path / "port"
        proto = server.port.protocol or ""
        if proto.upper() not in checks.PROTOCOLS:
            ctx.error(pp / "protocol", f'invalid protocol "{proto}", supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP')
            port_ok = False
        if (server.port.number or 0) > 0 or not bind.startswith(UNIX):
            err = checks.port(server.port.number)
            ctx.check(pp / "number", err)
            port_ok = port_ok and not err
        if server.port.target_port:
            ctx.error(pp / "targetPort", "targetPort has no impact on Gateways")
            port_ok = False
        if not server.port.name:
            ctx.error(pp / "name", f"port name must be set: number:{server.port.number or 0} protocol:{proto!r}")
            port_ok = False
    if bind.startswith(UNIX):
        ctx.check(path / "bind", unix_address(bind[len(UNIX) :]))
        if server.port is not None and server.port.number:
            ctx.error(path / "port" / "number", "port number must be 0 for unix domain socket")
    elif bind:
        ctx.check(path / "bind", checks.ip_address(bind))
    server_tls(ctx, path / "tls", server.tls)
    if port_ok and server.port is not None:
        proto = (server.port.protocol or "").upper()
        if proto in checks.TLS_PROTOCOLS and server.tls is None:
            ctx.error(path / "tls", "server must have TLS settings for HTTPS/TLS protocols")
        elif proto not in checks.TLS_PROTOCOLS and server.tls is not None:
            t = server.tls
            if proto in checks.HTTP_PROTOCOLS:
                redirect_only = t.https_redirect and (t.mode in (None, "PASSTHROUGH"))
                if not redirect_only or t.ca_certificates or t.private_key or t.server_certificate:
                    ctx.error(path / "tls", "server cannot have TLS settings for plain text HTTP ports")
            else:
                ctx.error(path / "tls", "server cannot have TLS settings for non HTTPS/TLS ports")


def server_tls(ctx: Ctx, path: Path, tls: ServerTLSSettings | None) -> None:
    if tls is None:
        return
    if tls.min_protocol_version in ("TLSV1_0", "TLSV1_1") and not tls.cipher_suites:
        ctx.warn(path / "minProtocolVersion", "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.")
    mode = tls.mode or "PASSTHROUGH"
    if mode == "ISTIO_MUTUAL":
        for field, value, what in (
            ("serverCertificate", tls.server_certificate, "server certificate"),
            ("privateKey", tls.private_key, "private key"),
            ("caCertificates", tls.ca_certificates, "CA bundle"),
            ("credentialName", tls.credential_name, "credentialName"),
        ):
            if value:
                ctx.error(path / field, f"ISTIO_MUTUAL TLS cannot have associated {what}")
        return
    if mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and (tls.ca_crl or tls.server_certificate or tls.private_key or tls.ca_certificates or tls.credential_name):
        ctx.warn(path, f"{mode} mode does not use certificates, they will be ignored")
    if mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") and (tls.credential_name or tls.credential_names or tls.tls_certificates):
        return
    if mode == "SIMPLE":
        if not tls.server_certificate:
            ctx.error(path / "serverCertificate", "SIMPLE TLS requires a server certificate")
        if not tls.private_key:
            ctx.error(path / "privateKey", "SIMPLE TLS requires a private key")
    elif mode in ("MUTUAL", "OPTIONAL_MUTUAL"):
        if not tls.server_certificate:
            ctx.error(path / "serverCertificate", "MUTUAL TLS requires a server certificate")
        if not tls.private_key:
            ctx.error(path / "privateKey", "MUTUAL TLS requires a private key")
        if not tls.ca_certificates:
            ctx.error(path / "caCertificates", "MUTUAL TLS requires a client CA bundle")
    if tls.ca_crl and mode == "SIMPLE":
        ctx.error(path / "caCrl", "CRL is not supported with SIMPLE TLS")


def namespace_slash_host(host: str, *, gateway: bool) -> list[str]:
    """Istio's ValidateNamespaceSlashWildcardHostname for Gateway servers and Sidecar egress."""
    ns, slash, name = host.partition("/")
    if not slash:
        if gateway:
            return _host_part(host, gateway=True)
        return ["host must be of form namespace/dnsName"]
    errors: list[str] = []
    if not ns or not name:
        errors.append("config namespace and dnsName in host entry cannot be empty")
    allowed = ("*", ".") if gateway else ("*", ".", "~")
    if ns not in allowed and not checks.is_dns1123_label(ns):
        errors.append(f'invalid namespace value "{ns}" in {"gateway" if gateway else "sidecar"}')
    return errors + _host_part(name, gateway=gateway)


def _host_part(host: str, *, gateway: bool) -> list[str]:
    errors = []
    if host != "*" and "." not in host:
        errors.append("short names (non FQDN) are not allowed")
    err = checks.wildcard_domain(host)
    if err and not (gateway and checks.is_ip(host)):
        errors.append(err)
    partial = checks.partial_wildcard(host)
    if partial:
        errors.append(partial)
    return errors


# ---- ServiceEntry / WorkloadEntry / WorkloadGroup ---------------------------------------


def validate_service_entry(resource: Resource, ctx: Ctx) -> None:
    se: ServiceEntry = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    if se.workload_selector is not None:
        workload_selector(ctx, spec / "workloadSelector", se.workload_selector.labels, "labels", "service entry: ")
        if se.endpoints:
            ctx.error(spec, "only one of WorkloadSelector or Endpoints is allowed in Service Entry")
    if not se.hosts:
        ctx.error(spec / "hosts", "service entry must have at least one host")
    for i, host in enumerate(se.hosts):
        if host == "*":
            ctx.error(spec / "hosts" / i, f"invalid host {host}")
        else:
            ctx.check(spec / "hosts" / i, checks.wildcard_domain(host))
            partial = checks.partial_wildcard(host)
            if partial:
                ctx.warn(spec / "hosts" / i, partial)
    resolution = se.resolution or "NONE"
    cidr = False
    for i, address in enumerate(se.addresses):
        cidr = cidr or "/" in address
        ctx.check(spec / "addresses" / i, checks.ip_subnet(address))
    if cidr and resolution not in ("NONE", "STATIC"):
        ctx.error(spec / "resolution", "CIDR addresses are allowed only for NONE/STATIC resolution types")
    names: set[str] = set()
    numbers: set[int] = set()
    for i, p in enumerate(se.ports):
        pp = spec / "ports" / i
        if p.name in names:
            ctx.error(pp / "name", f'service entry port name "{p.name}" already defined')
        if p.number in numbers:
            ctx.error(pp / "number", f"service entry port {p.number} already defined")
        names.add(p.name or "")
        numbers.add(p.number or 0)
        if p.target_port:
            ctx.port(pp / "targetPort", p.target_port)
            if resolution == "NONE":
                ctx.warn(pp / "targetPort", "targetPort has no effect when resolution mode is NONE")
        if not se.addresses and (p.protocol or "TCP").upper() == "TCP":
            ctx.warn(pp, "addresses are required for ports serving TCP (or unset) protocol when ISTIO_META_DNS_AUTO_ALLOCATE is not set on a proxy")
        ctx.check(pp / "name", checks.port_name(p.name))
        ctx.check(pp / "protocol", checks.protocol(p.protocol))
        ctx.port(pp / "number", p.number)
    if resolution == "NONE":
        if se.endpoints:
            ctx.error(spec / "endpoints", "no endpoints should be provided for resolution type none")
        if se.workload_selector is not None:
            ctx.warn(spec / "workloadSelector", "workloadSelector should not be set when resolution mode is NONE")
    elif resolution == "STATIC":
        for i, ep in enumerate(se.endpoints):
            workload_entry(ctx, spec / "endpoints" / i, ep, names, allow_fqdn=False)
    else:
        if not se.endpoints:
            for i, host in enumerate(se.hosts):
                if checks.fqdn(host):
                    ctx.error(spec / "hosts" / i, f"hosts must be FQDN if no endpoints are provided for resolution mode {resolution}")
        if resolution == "DNS_ROUND_ROBIN" and len(se.endpoints) > 1:
            ctx.error(spec / "endpoints", f"there must only be 0 or 1 endpoint for resolution mode {resolution}")
        for i, ep in enumerate(se.endpoints):
            ep_path = spec / "endpoints" / i
            address = ep.address or ""
            if not checks.is_ip(address) and checks.fqdn(address):
                ctx.error(ep_path / "address", f'endpoint address "{address}" is not a valid FQDN or an IP address')
            ctx.labels(ep_path / "labels", ep.labels)
            for name, number in ep.ports.items():
                if name not in names:
                    ctx.error((ep_path / "ports").key(name), f"endpoint port {number} is not defined by the service entry")
                ctx.check((ep_path / "ports").key(name), checks.port_name(name))
                ctx.port((ep_path / "ports").key(name), number)
        if se.workload_selector is not None:
            ctx.warn(spec / "workloadSelector", f"workloadSelector should not be set when resolution mode is {resolution}")
        if se.addresses and len(se.hosts) > 1 and any((p.protocol or "TCP").upper() in checks.TCP_PROTOCOLS for p in se.ports):
            ctx.warn(spec / "hosts", "service entry can not have more than one host specified simultaneously with address and tcp port")
    if resolution != "NONE" and len(se.hosts) > 1:
        for i, p in enumerate(se.ports):
            proto = (p.protocol or "").upper()
            if proto not in checks.HTTP_PROTOCOLS and proto not in checks.TLS_PROTOCOLS:
                ctx.error(spec / "ports" / i / "protocol", "multiple hosts provided with non-HTTP, non-TLS ports")
                break
    export_to(ctx, spec / "exportTo", se.export_to, service_entry=True)


def workload_entry(ctx: Ctx, path: Path, we: WorkloadEntry, service_ports: set[str] | None, *, allow_fqdn: bool) -> None:
    address = we.address or ""
    if not address:
        if not we.network:
            ctx.error(path / "address", "address is required")
            return
        ctx.warn(path / "address", f'address is unset with network "{we.network}"')
    unix = address.startswith(UNIX)
    if unix:
        ctx.check(path / "address", unix_address(address[len(UNIX) :]))
        if we.ports:
            ctx.error(path / "ports", f"unix endpoint {address} must not include ports")
    elif address and not checks.is_ip(address):
        if not allow_fqdn:
            ctx.error(path / "address", f'endpoint address "{address}" is not a valid IP address')
        elif checks.fqdn(address):
            ctx.error(path / "address", f'endpoint address "{address}" is not a valid FQDN or an IP address')
    for name, number in we.ports.items():
        p = (path / "ports").key(name)
        if service_ports is not None and name not in service_ports:
            ctx.error(p, f"endpoint port {number} is not defined by the service entry")
        ctx.check(p, checks.port_name(name))
        ctx.port(p, number)
    ctx.labels(path / "labels", we.labels)
    if unix and service_ports is not None and len(service_ports) != 1:
        ctx.error(path, "exactly 1 service port required for unix endpoints")
    if we.service_account and not checks.is_dns1123_subdomain(we.service_account):
        ctx.error(path / "serviceAccount", f"invalid service account name: {we.service_account}")


def validate_workload_entry(resource: Resource, ctx: Ctx) -> None:
    workload_entry(ctx, Path("spec"), resource.spec, None, allow_fqdn=True)  # type: ignore[arg-type]


def validate_workload_group(resource: Resource, ctx: Ctx) -> None:
    wg: WorkloadGroup = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    if wg.template is None:
        ctx.error(spec / "template", "template is required")
        return
    if wg.metadata is not None:
        for k, v in wg.metadata.labels.items():
            err = checks.label_key(k) or checks.label_value(v)
            if err:
                ctx.error((spec / "metadata" / "labels").key(k), f"invalid labels: {err}")
    probe = wg.probe
    if probe is None:
        return
    p = spec / "probe"
    for field, attr in (
        ("periodSeconds", "period_seconds"),
        ("initialDelaySeconds", "initial_delay_seconds"),
        ("timeoutSeconds", "timeout_seconds"),
        ("successThreshold", "success_threshold"),
        ("failureThreshold", "failure_threshold"),
    ):
        value = getattr(probe, attr)
        if value is not None and value < 0:
            ctx.error(p / field, f"{field} must be non-negative")
    methods = [m for m in ("http_get", "tcp_socket", "exec", "grpc") if getattr(probe, m) is not None]
    if len(methods) > 1:
        ctx.error(p, "only one of httpGet, tcpSocket, exec or grpc may be set")
    if probe.http_get is not None:
        h = probe.http_get
        ctx.port(p / "httpGet" / "port", h.port)
        if h.scheme and h.scheme not in ("HTTPS", "HTTP"):
            ctx.error(p / "httpGet" / "scheme", 'httpGet.scheme must be one of "HTTPS", "HTTP"')
        for i, header in enumerate(h.http_headers):
            ctx.check(p / "httpGet" / "httpHeaders" / i / "name", checks.header_name(header.name or ""))
    elif probe.tcp_socket is not None:
        ctx.port(p / "tcpSocket" / "port", probe.tcp_socket.port)
    elif probe.exec is not None:
        if not probe.exec.command:
            ctx.error(p / "exec" / "command", "exec.command is required")
    elif probe.grpc is not None:
        ctx.port(p / "grpc" / "port", probe.grpc.port)
    else:
        ctx.error(p, "unknown health check method <nil>")


# ---- Sidecar ---------------------------------------------------------------------------


def validate_sidecar(resource: Resource, ctx: Ctx) -> None:
    sc: Sidecar = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    if sc.workload_selector is not None:
        workload_selector(ctx, spec / "workloadSelector", sc.workload_selector.labels, "labels", "sidecar: ")
    if not sc.egress and not sc.ingress and sc.outbound_traffic_policy is None and sc.inbound_connection_pool is None:
        ctx.error(spec, "sidecar: empty configuration provided")
        return
    ports: set[int] = set()
    for i, ing in enumerate(sc.ingress):
        p = spec / "ingress" / i
        if ing.port is None:
            ctx.error(p / "port", "sidecar: port is required for ingress listeners")
            continue
        if ing.port.target_port:
            ctx.error(p / "port" / "targetPort", "targetPort has no impact on Sidecars")
        _sidecar_port(ctx, p, ing.port, ing.bind or "", ingress=True)
        if ing.port.number in ports:
            ctx.error(p / "port" / "number", "sidecar: ports on IP bound listeners must be unique")
        ports.add(ing.port.number or 0)
        if ing.default_endpoint:
            _default_endpoint(ctx, p / "defaultEndpoint", ing.default_endpoint)
        if ing.tls is not None:
            t = ing.tls
            tp = p / "tls"
            if t.subject_alt_names:
                ctx.error(tp / "subjectAltNames", "sidecar: subjectAltNames is not supported in ingress tls")
            if t.https_redirect:
                ctx.error(tp / "httpsRedirect", "sidecar: httpsRedirect is not supported")
            if t.credential_name:
                ctx.error(tp / "credentialName", "sidecar: credentialName is not currently supported")
            if t.mode in ("ISTIO_MUTUAL", "AUTO_PASSTHROUGH"):
                ctx.error(tp / "mode", f"configuration is invalid: cannot set mode to {t.mode} in sidecar ingress tls")
            server_tls(ctx, tp, t)
        connection_pool(ctx, p / "connectionPool", ing.connection_pool)
        if ing.connection_pool is not None and ing.connection_pool.http is not None and (ing.port.protocol or "").upper() not in checks.HTTP_PROTOCOLS:
            ctx.warn(p / "connectionPool", f'sidecar: HTTP connection pool settings are configured for port {ing.port.number} ("{ing.port.name or ""}") but its protocol is not HTTP ({ing.port.protocol or ""}); only TCP settings will apply')
    connection_pool(ctx, spec / "inboundConnectionPool", sc.inbound_connection_pool)

    ports = set()
    sockets: set[str] = set()
    catch_all = False
    for i, eg in enumerate(sc.egress):
        p = spec / "egress" / i
        if eg.port is None:
            if catch_all:
                ctx.error(p, "sidecar: egress can have only one listener with empty port")
                continue
            if i == len(sc.egress) - 1:
                catch_all = True
            else:
                ctx.error(p, "sidecar: the egress listener with empty port should be the last listener in the list")
        else:
            if eg.port.target_port:
                ctx.error(p / "port" / "targetPort", "targetPort has no impact on Sidecars")
            bind = eg.bind or ""
            _sidecar_port(ctx, p, eg.port, bind, ingress=False, capture_mode=eg.capture_mode)
            if not eg.port.number:
                if bind in sockets:
                    ctx.error(p / "bind", "sidecar: unix domain socket values for listeners must be unique")
                sockets.add(bind)
            else:
                if eg.port.number in ports:
                    ctx.error(p / "port" / "number", "sidecar: ports on IP bound listeners must be unique")
                ports.add(eg.port.number)
        if not eg.hosts:
            ctx.error(p / "hosts", "sidecar: egress listener must contain at least one host")
        by_namespace: dict[str, set[str]] = {}
        for j, host in enumerate(eg.hosts):
            ns, slash, name = host.partition("/")
            if slash:
                names = by_namespace.setdefault(ctx.namespace if ns == "." else ns, set())
                if (name in names or "*" in names) if name != "*" else names:
                    ctx.warn(p / "hosts" / j, f"duplicated egress host: {host}")
                names.add(name)
            for reason in namespace_slash_host(host, gateway=False):
                ctx.error(p / "hosts" / j, reason)
        if "*" in by_namespace.get("*", set()) and len(by_namespace) != 1:
            ctx.warn(p / "hosts", "`*/*` host select all resources, no other hosts can be added")
    otp = sc.outbound_traffic_policy
    if otp is not None and otp.egress_proxy is not None:
        p = spec / "outboundTrafficPolicy"
        if (otp.mode or "REGISTRY_ONLY") != "ALLOW_ANY":
            ctx.error(p / "egressProxy", "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode")
            return
        ctx.check(p / "egressProxy" / "host", checks.fqdn(otp.egress_proxy.host or ""))
        if otp.egress_proxy.port is None:
            ctx.error(p / "egressProxy" / "port", "sidecar: egress_proxy port must be non-nil")
            return
        destination(ctx, p / "egressProxy", otp.egress_proxy)


def _sidecar_port(ctx: Ctx, path: Path, port: Port, bind: str, *, ingress: bool, capture_mode: str | None = None) -> None:
    pp = path / "port"
    if port.name:
        ctx.check(pp / "name", checks.port_name(port.name))
    ctx.check(pp / "protocol", checks.protocol(port.protocol))
    if not ingress and not port.number:
        if not bind.startswith(UNIX):
            ctx.error(path / "bind", "sidecar: ports with 0 value must have a unix domain socket bind address")
        else:
            ctx.check(path / "bind", unix_address(bind[len(UNIX) :]))
        if capture_mode not in (None, "DEFAULT", "NONE"):
            ctx.error(path / "captureMode", "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners")
        return
    ctx.port(pp / "number", port.number)
    if bind:
        ctx.check(path / "bind", checks.ip_address(bind))


def _default_endpoint(ctx: Ctx, path: Path, endpoint: str) -> None:
    if endpoint.startswith(UNIX):
        ctx.check(path, unix_address(endpoint[len(UNIX) :]))
        return
    host, sep, port = endpoint.rpartition(":")
    if not sep:
        ctx.error(path, f"address {endpoint}: missing port in address")
        return
    host = host.strip("[]")
    if host not in ("", "127.0.0.1", "0.0.0.0", "::1", "::"):
        ctx.error(path, "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset")
    if not port.isdigit():
        ctx.error(path, f'sidecar: defaultEndpoint port ({port}) is not a number: strconv.Atoi: parsing "{port}": invalid syntax')
    else:
        ctx.port(path, int(port))


RULES = {
    "Gateway": [validate_gateway],
    "ServiceEntry": [validate_service_entry],
    "WorkloadEntry": [validate_workload_entry],
    "WorkloadGroup": [validate_workload_group],
    "Sidecar": [validate_sidecar],
}
