"""Invalid documents for security, telemetry, extension and Kubernetes kinds."""

from __future__ import annotations

from model_cases import AP, DEPLOY, DELETE, EF, NS, PA, PC, POD, RA, SVC, TEL, VS, WASM, Case

J0 = "spec.jwtRules[0]"
R0 = "spec.rules[0]"
SRC = f"{R0}.from[0].source"
OP = f"{R0}.to[0].operation"
W0 = f"{R0}.when[0]"

PEER_AUTHENTICATION = [
    Case("pa-port-level-without-selector", PA, {"spec.selector": DELETE, "spec.portLevelMtls": {"8080": {"mode": "DISABLE"}}}, {"spec.portLevelMtls": {"8080": {"mode": "DISABLE"}}}, "spec.portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS"),
    Case("pa-port-level-range", PA, {"spec.portLevelMtls": {"0": {"mode": "DISABLE"}}}, {"spec.portLevelMtls": {"9080": {"mode": "PERMISSIVE"}}}, "spec.portLevelMtls[0]", "port must be in range 1..65535"),
    Case("pa-mode-enum", PA, {"spec.mtls.mode": "ON"}, {"spec.mtls.mode": "PERMISSIVE"}, "spec.mtls.mode", 'unknown value "ON" for enum (one of: UNSET, DISABLE, PERMISSIVE, STRICT)'),
    Case("pa-port-level-mode-enum", PA, {"spec.portLevelMtls": {"9080": {"mode": "OFF"}}}, {"spec.portLevelMtls": {"9080": {"mode": "DISABLE"}}}, "spec.portLevelMtls[9080].mode", 'unknown value "OFF" for enum (one of: UNSET, DISABLE, PERMISSIVE, STRICT)'),
    Case("pa-selector-wildcard", PA, {"spec.selector.matchLabels": {"app": "rev*"}}, {"spec.selector.matchLabels": {"app": "reviews"}}, "spec.selector.matchLabels[app]", 'wildcard is not supported in selector: "app=rev*"'),
    Case("pa-selector-empty-key", PA, {"spec.selector.matchLabels": {"": "x"}}, {"spec.selector.matchLabels": {"x": ""}}, "spec.selector.matchLabels[]", 'empty key is not supported in selector: "=x"'),
]

REQUEST_AUTHENTICATION = [
    Case("ra-no-issuer", RA, {f"{J0}.issuer": DELETE}, {}, f"{J0}.issuer", "issuer must be set"),
    Case("ra-jwks-uri-scheme", RA, {f"{J0}.jwksUri": "ftp://issuer.example.com/jwks"}, {f"{J0}.jwksUri": "http://issuer.example.com:8080/jwks"}, f"{J0}.jwksUri", 'URI scheme "ftp" is not supported'),
    Case("ra-audience-empty", RA, {f"{J0}.audiences": [""]}, {f"{J0}.audiences": ["bookinfo"]}, f"{J0}.audiences[0]", "audience must be non-empty string"),
    Case("ra-from-header-name", RA, {f"{J0}.fromHeaders": [{"name": "", "prefix": "Bearer "}]}, {f"{J0}.fromHeaders": [{"name": "x-jwt", "prefix": "Bearer "}]}, f"{J0}.fromHeaders[0].name", "location header name must be non-empty string"),
    Case("ra-from-params", RA, {f"{J0}.fromParams": [""]}, {f"{J0}.fromParams": ["token"]}, f"{J0}.fromParams[0]", "location query must be non-empty string"),
    Case("ra-from-cookies", RA, {f"{J0}.fromCookies": [""]}, {f"{J0}.fromCookies": ["session"]}, f"{J0}.fromCookies[0]", "cookie name must be non-empty string"),
    Case("ra-claim-header", RA, {f"{J0}.outputClaimToHeaders": [{"header": "x user", "claim": "sub"}]}, {f"{J0}.outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]}, f"{J0}.outputClaimToHeaders[0].header", "header name x user is not a valid header name"),
    Case("ra-claim-missing", RA, {f"{J0}.outputClaimToHeaders": [{"header": "x-user"}]}, {f"{J0}.outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]}, f"{J0}.outputClaimToHeaders[0]", "outputClaimToHeaders header and claim value must be non-empty string"),
    Case("ra-timeout", RA, {f"{J0}.timeout": "0s"}, {f"{J0}.timeout": "5s"}, f"{J0}.timeout", "duration must be greater than 1ms"),
    Case("ra-jwks-garbage", RA, {f"{J0}.jwksUri": DELETE, f"{J0}.jwks": "not json"}, {f"{J0}.jwksUri": DELETE, f"{J0}.jwks": '{"keys": []}'}, f"{J0}.jwks", "jwks parse error: *"),
    Case("ra-selector-and-target-ref", RA, {"spec.targetRef": {"kind": "Service", "name": "reviews"}}, {"spec.selector": DELETE, "spec.targetRef": {"kind": "Service", "name": "reviews"}}, "spec", "only one of targetRefs or workloadSelector can be set"),
    Case("ra-target-ref-kind", RA, {"spec.selector": DELETE, "spec.targetRefs": [{"kind": "Deployment", "group": "apps", "name": "reviews"}]}, {"spec.selector": DELETE, "spec.targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "ingress"}]}, "spec.targetRefs[0]", "targetRef must be to one of *"),
    Case("ra-target-ref-namespace", RA, {"spec.selector": DELETE, "spec.targetRef": {"kind": "Service", "name": "reviews", "namespace": "other"}}, {"spec.selector": DELETE, "spec.targetRef": {"kind": "Service", "name": "reviews"}}, "spec.targetRef.namespace", "targetRef namespace must not be set; cross namespace referencing is not supported"),
    Case("ra-target-ref-name", RA, {"spec.selector": DELETE, "spec.targetRef": {"kind": "Service"}}, {"spec.selector": DELETE, "spec.targetRef": {"kind": "Service", "name": "reviews"}}, "spec.targetRef.name", "targetRef name must be set"),
]

AUTHORIZATION_POLICY = [
    Case("ap-ip-block-cidr", AP, {SRC: {"ipBlocks": ["10.0.0.0/33"]}}, {SRC: {"ipBlocks": ["10.0.0.0/8"]}}, f"{SRC}.ipBlocks[0]", "bad CIDR range (10.0.0.0/33): *"),
    Case("ap-ip-block-address", AP, {SRC: {"ipBlocks": ["10.0.0.300"]}}, {SRC: {"ipBlocks": ["10.0.0.30"]}}, f"{SRC}.ipBlocks[0]", "bad IP address (10.0.0.300)"),
    Case("ap-not-remote-ip-block", AP, {SRC: {"notRemoteIpBlocks": ["fe80::/200"]}}, {SRC: {"notRemoteIpBlocks": ["fe80::/10"]}}, f"{SRC}.notRemoteIpBlocks[0]", "bad CIDR range (fe80::/200): *"),
    Case("ap-principal-empty", AP, {SRC: {"principals": [""]}}, {SRC: {"principals": ["*"]}}, f"{SRC}.principals[0]", "empty value not allowed, found in Principals"),
    Case("ap-principal-malformed", AP, {SRC: {"principals": ["cluster.local/sa/sleep"]}}, {SRC: {"principals": ["cluster.local/ns/default/sa/sleep"]}}, f"{SRC}.principals[0]", 'invalid principal "cluster.local/sa/sleep": want <trust-domain>/ns/<namespace>/sa/<service-account>'),
    Case("ap-principal-wildcard-middle", AP, {SRC: {"notPrincipals": ["cluster.local/ns/*/sa/sleep"]}}, {SRC: {"notPrincipals": ["*/ns/default/sa/sleep"]}}, f"{SRC}.notPrincipals[0]", 'invalid value "cluster.local/ns/*/sa/sleep" in notPrincipals: "*" is only supported as a prefix, a suffix or the whole value'),
    Case("ap-namespace-invalid", AP, {SRC: {"namespaces": ["Bad_NS"]}}, {SRC: {"namespaces": ["prod-*"]}}, f"{SRC}.namespaces[0]", 'invalid namespace "Bad_NS": must be a DNS-1123 label'),
    Case("ap-request-principal-empty", AP, {SRC: {"requestPrincipals": [""]}}, {SRC: {"requestPrincipals": ["https://issuer.example.com/*"]}}, f"{SRC}.requestPrincipals[0]", "empty value not allowed, found in RequestPrincipals"),
    Case("ap-service-accounts-with-principals", AP, {SRC: {"serviceAccounts": ["default/productpage"], "principals": ["cluster.local/ns/default/sa/productpage"]}}, {SRC: {"serviceAccounts": ["default/productpage"]}}, SRC, "Cannot set serviceAccounts with namespaces or principals"),
    Case("ap-source-empty", AP, {SRC: {}}, {SRC: {"notNamespaces": ["test"]}}, SRC, "`from.source` must not be empty, found at rule 0"),
    Case("ap-from-without-source", AP, {f"{R0}.from[0]": {}}, {f"{R0}.from[0]": {"source": {"namespaces": ["prod"]}}}, SRC, "`from.source` must not be nil, found at rule 0"),
    Case("ap-operation-empty", AP, {OP: {}}, {OP: {"notPaths": ["/admin*"]}}, OP, "`to.operation` must not be empty, found at rule 0"),
    Case("ap-port-name", AP, {OP: {"ports": ["http"]}}, {OP: {"ports": ["8080"]}}, f"{OP}.ports[0]", "bad port (http): *"),
    Case("ap-port-range", AP, {OP: {"notPorts": ["70000"]}}, {OP: {"notPorts": ["9090"]}}, f"{OP}.notPorts[0]", "bad port (70000): *"),
    Case("ap-method-empty", AP, {OP: {"methods": [""]}}, {OP: {"methods": ["POST"]}}, f"{OP}.methods[0]", "empty value not allowed, found in Methods"),
    Case("ap-path-template", AP, {OP: {"paths": ["/{foo}/x/{*}"]}}, {OP: {"paths": ["/api/{*}/x/{**}"]}}, f"{OP}.paths[0]", "invalid or unsupported path template, found in Paths"),
    Case("ap-when-key-empty", AP, {f"{R0}.when": [{"values": ["x"]}]}, {f"{R0}.when": [{"key": "request.headers[x-token]", "values": ["x"]}]}, f"{W0}.key", "`key` must not be empty"),
    Case("ap-when-no-values", AP, {f"{R0}.when": [{"key": "request.auth.claims[iss]"}]}, {f"{R0}.when": [{"key": "request.auth.claims[iss]", "values": ["https://accounts.google.com"]}]}, W0, "at least one of `values` or `notValues` must be set for key request.auth.claims[iss]"),
    Case("ap-when-unknown-key", AP, {f"{R0}.when": [{"key": "foo.bar", "values": ["x"]}]}, {f"{R0}.when": [{"key": "connection.sni", "values": ["x.example.com"]}]}, f"{W0}.values", "invalid `value` for `key` foo.bar: unknown attribute: foo.bar"),
    Case("ap-when-source-ip", AP, {f"{R0}.when": [{"key": "source.ip", "values": ["1.2.3.4/99"]}]}, {f"{R0}.when": [{"key": "source.ip", "values": ["1.2.3.4/24"]}]}, f"{W0}.values", "invalid `value` for `key` source.ip: bad CIDR range (1.2.3.4/99): *"),
    Case("ap-when-header-key", AP, {f"{R0}.when": [{"key": "request.headers", "values": ["x"]}]}, {f"{R0}.when": [{"key": "request.headers[User-Agent]", "values": ["x"]}]}, f"{W0}.values", "invalid `value` for `key` request.headers: bad key (request.headers): should have format a[b]"),
    Case("ap-when-destination-port", AP, {f"{R0}.when": [{"key": "destination.port", "notValues": ["abc"]}]}, {f"{R0}.when": [{"key": "destination.port", "notValues": ["443"]}]}, f"{W0}.notValues", "invalid `notValue` for `key` destination.port: bad port (abc)"),
    Case("ap-when-destination-namespace", AP, {f"{R0}.when": [{"key": "destination.namespace", "values": ["prod"]}]}, {f"{R0}.when": [{"key": "source.namespace", "values": ["prod"]}]}, f"{W0}.values", "invalid `value` for `key` destination.namespace: attribute destination.namespace is replaced by the metadata.namespace"),
    Case("ap-deny-without-rules", AP, {"spec.action": "DENY", "spec.rules": DELETE}, {"spec.action": "DENY", "spec.rules": [{}]}, "spec.rules", "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request"),
    Case("ap-custom-without-provider", AP, {"spec.action": "CUSTOM", SRC: {"ipBlocks": ["10.0.0.0/8"]}}, {"spec.action": "CUSTOM", SRC: {"ipBlocks": ["10.0.0.0/8"]}, "spec.provider": {"name": "ext-authz"}}, "spec.provider.name", "`provider.name` must not be empty"),
    Case("ap-provider-with-allow", AP, {"spec.provider": {"name": "ext-authz"}}, {}, "spec.provider", "`provider` must not be with non CUSTOM action, found ALLOW"),
    Case("ap-custom-with-principals", AP, {"spec.action": "CUSTOM", "spec.provider": {"name": "ext-authz"}}, {"spec.action": "CUSTOM", "spec.provider": {"name": "ext-authz"}, SRC: {"ipBlocks": ["10.0.0.0/8"]}}, f"{SRC}.principals", "From.Principals is currently not supported with CUSTOM action"),
    Case("ap-action-enum", AP, {"spec.action": "PERMIT"}, {"spec.action": "AUDIT"}, "spec.action", 'unknown value "PERMIT" for enum (one of: ALLOW, DENY, AUDIT, CUSTOM)'),
    Case("ap-dry-run-value", AP, {"metadata.annotations": {"istio.io/dry-run": "maybe"}}, {"metadata.annotations": {"istio.io/dry-run": "true"}}, "metadata.annotations[istio.io/dry-run]", 'default/reviews-viewer has annotation istio.io/dry-run with invalid value (maybe): strconv.ParseBool: parsing "maybe": invalid syntax'),
    Case("ap-source-unknown-field", AP, {SRC: {"principal": ["x"]}}, {SRC: {"principals": ["x"]}}, f"{SRC}.principal", 'unknown field "principal"'),
    Case("ap-selector-and-target-refs", AP, {"spec.targetRefs": [{"kind": "Service", "name": "reviews"}]}, {"spec.selector": DELETE, "spec.targetRefs": [{"kind": "Service", "name": "reviews"}]}, "spec", "only one of targetRefs or workloadSelector can be set"),
]

T = "spec.tracing[0]"
M = "spec.metrics[0]"

TELEMETRY = [
    Case("tel-provider-name", TEL, {f"{M}.providers": [{"name": ""}]}, {f"{M}.providers": [{"name": "prometheus"}]}, f"{M}.providers[0].name", "providers.name may not be empty"),
    Case("tel-sampling", TEL, {"spec.tracing": [{"randomSamplingPercentage": 150}]}, {"spec.tracing": [{"randomSamplingPercentage": 1.5}]}, f"{T}.randomSamplingPercentage", "randomSamplingPercentage must be in range [0.0, 100.0]"),
    Case("tel-literal-tag", TEL, {"spec.tracing": [{"customTags": {"env": {"literal": {"value": ""}}}}]}, {"spec.tracing": [{"customTags": {"env": {"literal": {"value": "prod"}}}}]}, f"{T}.customTags[env].literal.value", "literal tag value may not be empty"),
    Case("tel-header-tag", TEL, {"spec.tracing": [{"customTags": {"user": {"header": {"name": ""}}}}]}, {"spec.tracing": [{"customTags": {"user": {"header": {"name": "x-user", "defaultValue": "anon"}}}}]}, f"{T}.customTags[user].header.name", "header tag name may not be empty"),
    Case("tel-tag-upsert-no-value", TEL, {f"{M}.overrides": [{"tagOverrides": {"request_protocol": {"operation": "UPSERT"}}}]}, {f"{M}.overrides": [{"tagOverrides": {"request_protocol": {"operation": "UPSERT", "value": "request.protocol"}}}]}, f"{M}.overrides[0].tagOverrides[request_protocol].value", "tagOverrides.value must be set when operation is UPSERT"),
    Case("tel-tag-remove-with-value", TEL, {f"{M}.overrides": [{"tagOverrides": {"request_protocol": {"operation": "REMOVE", "value": "x"}}}]}, {f"{M}.overrides": [{"tagOverrides": {"request_protocol": {"operation": "REMOVE"}}}]}, f"{M}.overrides[0].tagOverrides[request_protocol].value", "tagOverrides.value may only be set when operation is UPSERT"),
    Case("tel-metric-enum", TEL, {f"{M}.overrides": [{"match": {"metric": "REQUESTS"}, "disabled": True}]}, {f"{M}.overrides": [{"match": {"metric": "REQUEST_COUNT", "mode": "CLIENT"}, "disabled": True}]}, f"{M}.overrides[0].match.metric", "unknown value \"REQUESTS\" for enum*"),
    Case("tel-reporting-interval", TEL, {f"{M}.reportingInterval": "15"}, {f"{M}.reportingInterval": "15s"}, f"{M}.reportingInterval", 'bad Duration: time: missing unit in duration "15"'),
    Case("tel-access-log-provider", TEL, {"spec.accessLogging": [{"providers": [{}]}]}, {"spec.accessLogging": [{"providers": [{"name": "envoy"}], "filter": {"expression": "response.code >= 400"}}]}, "spec.accessLogging[0].providers[0].name", "providers.name may not be empty"),
    Case("tel-mode-enum", TEL, {"spec.accessLogging": [{"match": {"mode": "BOTH"}}]}, {"spec.accessLogging": [{"match": {"mode": "CLIENT_AND_SERVER"}}]}, "spec.accessLogging[0].match.mode", 'unknown value "BOTH" for enum (one of: CLIENT_AND_SERVER, CLIENT, SERVER)'),
]

P0 = "spec.configPatches[0]"

EXTENSIONS = [
    Case("ef-missing-apply-to", EF, {f"{P0}.applyTo": DELETE}, {}, f"{P0}.applyTo", "Envoy filter: missing applyTo"),
    Case("ef-missing-patch", EF, {f"{P0}.patch": DELETE}, {}, f"{P0}.patch", "Envoy filter: missing patch"),
    Case("ef-missing-operation", EF, {f"{P0}.patch.operation": DELETE}, {}, f"{P0}.patch.operation", "Envoy filter: missing patch operation"),
    Case("ef-missing-value", EF, {f"{P0}.patch.value": DELETE, f"{P0}.patch.operation": "MERGE"}, {f"{P0}.patch.value": DELETE, f"{P0}.patch.operation": "REMOVE"}, f"{P0}.patch.value", "Envoy filter: missing patch value for non-remove operation"),
    Case("ef-proxy-version-regex", EF, {f"{P0}.match.proxy": {"proxyVersion": "^1\\.(?=2)"}}, {f"{P0}.match.proxy": {"proxyVersion": "^1\\.2.*"}}, f"{P0}.match.proxy.proxyVersion", "Envoy filter: invalid regex for proxy version, [*"),
    Case("ef-listener-class-cluster-match", EF, {f"{P0}.match.listener": DELETE, f"{P0}.match.cluster": {"service": "reviews.default.svc.cluster.local"}}, {f"{P0}.match.listener": DELETE}, f"{P0}.match", "Envoy filter: applyTo for listener class objects cannot have non listener match"),
    Case("ef-cluster-listener-match", EF, {f"{P0}.applyTo": "CLUSTER"}, {f"{P0}.applyTo": "CLUSTER", f"{P0}.match.listener": DELETE, f"{P0}.match.cluster": {"portNumber": 9080}}, f"{P0}.match", "Envoy filter: applyTo for cluster class objects cannot have non cluster match"),
    Case("ef-route-listener-match", EF, {f"{P0}.applyTo": "HTTP_ROUTE"}, {f"{P0}.applyTo": "HTTP_ROUTE", f"{P0}.match.listener": DELETE, f"{P0}.match.routeConfiguration": {"vhost": {"name": "reviews:9080"}}}, f"{P0}.match", "Envoy filter: applyTo for http route class objects cannot have non route configuration match"),
    Case("ef-subfilter-network", EF, {f"{P0}.applyTo": "NETWORK_FILTER", f"{P0}.match.listener.filterChain.filter.subFilter": {"name": "envoy.filters.http.router"}}, {f"{P0}.match.listener.filterChain.filter.subFilter": {"name": "envoy.filters.http.router"}}, f"{P0}.match.listener.filterChain.filter.subFilter", "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only"),
    Case("ef-filter-name-empty", EF, {f"{P0}.match.listener.filterChain.filter.name": ""}, {}, f"{P0}.match.listener.filterChain.filter.name", "Envoy filter: filter match has no name to match on"),
    Case("ef-apply-to-enum", EF, {f"{P0}.applyTo": "ROUTE"}, {f"{P0}.applyTo": "HTTP_FILTER"}, f"{P0}.applyTo", 'unknown value "ROUTE" for enum*'),
    Case("ef-context-enum", EF, {f"{P0}.match.context": "INBOUND"}, {f"{P0}.match.context": "ANY"}, f"{P0}.match.context", 'unknown value "INBOUND" for enum (one of: ANY, SIDECAR_INBOUND, SIDECAR_OUTBOUND, GATEWAY)'),
    Case("pc-concurrency", PC, {"spec.concurrency": -1}, {"spec.concurrency": 0}, "spec.concurrency", "concurrency must be greater than or equal to 0"),
    Case("pc-selector-wildcard", PC, {"spec.selector.matchLabels": {"app": "*"}}, {}, "spec.selector.matchLabels[app]", 'wildcard is not supported in selector: "app=*"'),
    Case("wasm-no-url", WASM, {"spec.url": DELETE}, {}, "spec.url", "url field needs to be set"),
    Case("wasm-url-scheme", WASM, {"spec.url": "ftp://example.com/plugin.wasm"}, {"spec.url": "https://example.com/plugin.wasm"}, "spec.url", "url contains unsupported scheme: ftp"),
    Case("wasm-sha-length", WASM, {"spec.sha256": "abc"}, {"spec.sha256": "a" * 64}, "spec.sha256", "sha256 field must be 64 characters long"),
    Case("wasm-sha-pattern", WASM, {"spec.sha256": "A" * 64}, {"spec.sha256": "0123456789abcdef" * 4}, "spec.sha256", "sha256 field must match [a-f0-9]{64} pattern"),
    Case("wasm-env-name", WASM, {"spec.vmConfig": {"env": [{"value": "x"}]}}, {"spec.vmConfig": {"env": [{"name": "MODE", "value": "x"}]}}, "spec.vmConfig.env[0].name", "spec.vmConfig.env invalid"),
    Case("wasm-phase-enum", WASM, {"spec.phase": "LATE"}, {"spec.phase": "STATS"}, "spec.phase", 'unknown value "LATE" for enum (one of: UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS)'),
    Case("wasm-match-port", WASM, {"spec.match": [{"mode": "SERVER", "ports": [{"number": 0}]}]}, {"spec.match": [{"mode": "SERVER", "ports": [{"number": 9080}]}]}, "spec.match[0].ports[0].number", "port number 0 must be in the range 1..65535"),
    Case("wasm-pull-policy-enum", WASM, {"spec.imagePullPolicy": "Never"}, {"spec.imagePullPolicy": "IfNotPresent"}, "spec.imagePullPolicy", 'unknown value "Never" for enum (one of: UNSPECIFIED_POLICY, IfNotPresent, Always)'),
]

CONTAINER = "spec.template.spec.containers[0]"

KUBERNETES = [
    Case("svc-port-zero", SVC, {"spec.ports[0].port": 0}, {"spec.ports[0].port": 80}, "spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
    Case("svc-target-port-range", SVC, {"spec.ports[0].targetPort": 70000}, {"spec.ports[0].targetPort": 9080}, "spec.ports[0].targetPort", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    Case("svc-target-port-name", SVC, {"spec.ports[0].targetPort": "Bad_Name"}, {"spec.ports[0].targetPort": "http-web"}, "spec.ports[0].targetPort", 'Invalid value: "Bad_Name": must be a valid port number or an IANA_SVC_NAME*'),
    Case("svc-unnamed-ports", SVC, {"spec.ports": [{"port": 80}, {"port": 81}]}, {"spec.ports": [{"port": 80, "name": "http"}, {"port": 81, "name": "http-alt"}]}, "spec.ports[0].name", "Required value"),
    Case("svc-duplicate-port-name", SVC, {"spec.ports": [{"port": 80, "name": "http"}, {"port": 81, "name": "http"}]}, {"spec.ports": [{"port": 80, "name": "http"}, {"port": 81, "name": "grpc", "appProtocol": "grpc"}]}, "spec.ports[1].name", 'Duplicate value: "http"'),
    Case("svc-protocol", SVC, {"spec.ports[0].protocol": "HTTP"}, {"spec.ports[0].protocol": "TCP"}, "spec.ports[0].protocol", 'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    Case("svc-port-name-case", SVC, {"spec.ports[0].name": "HTTP"}, {"spec.ports[0].name": "http"}, "spec.ports[0].name", 'Invalid value: "HTTP": a lowercase RFC 1123 label*'),
    Case("svc-type", SVC, {"spec.type": "Internal"}, {"spec.type": "NodePort"}, "spec.type", 'Unsupported value: "Internal": supported values: "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"'),
    Case("svc-no-ports", SVC, {"spec.ports": DELETE}, {"spec.ports": DELETE, "spec.clusterIP": "None"}, "spec.ports", "Required value"),
    Case("svc-selector-value", SVC, {"spec.selector": {"app": "re views"}}, {"spec.selector": {"app": "reviews"}}, "spec.selector[app]", 'invalid tag value: "re views"'),
    Case("deploy-selector-mismatch", DEPLOY, {"spec.selector.matchLabels.version": "v2"}, {"spec.selector.matchLabels.version": DELETE}, "spec.template.metadata.labels", "Invalid value: selector does not match template labels"),
    Case("deploy-no-selector", DEPLOY, {"spec.selector": DELETE}, {}, "spec.selector", "Required value"),
    Case("deploy-no-containers", DEPLOY, {"spec.template.spec.containers": []}, {}, "spec.template.spec.containers", "Required value"),
    Case("deploy-replicas", DEPLOY, {"spec.replicas": -1}, {"spec.replicas": 0}, "spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
    Case("deploy-container-name", DEPLOY, {f"{CONTAINER}.name": "Bad_Name"}, {f"{CONTAINER}.name": "reviews-app"}, f"{CONTAINER}.name", 'Invalid value: "Bad_Name": a lowercase RFC 1123 label*'),
    Case("deploy-container-port", DEPLOY, {f"{CONTAINER}.ports": [{"containerPort": 0}]}, {f"{CONTAINER}.ports": [{"containerPort": 9080, "name": "http"}]}, f"{CONTAINER}.ports[0].containerPort", "Invalid value: 0: must be between 1 and 65535, inclusive"),
    Case("deploy-env-name", DEPLOY, {f"{CONTAINER}.env": [{"value": "x"}]}, {f"{CONTAINER}.env": [{"name": "LOG_DIR", "value": "/tmp/logs"}]}, f"{CONTAINER}.env[0].name", "Required value"),
    Case("deploy-probe-port", DEPLOY, {f"{CONTAINER}.readinessProbe": {"httpGet": {"path": "/health", "port": 0}}}, {f"{CONTAINER}.readinessProbe": {"httpGet": {"path": "/health", "port": 9080}}}, f"{CONTAINER}.readinessProbe.httpGet.port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
    Case("deploy-service-account", DEPLOY, {"spec.template.spec.serviceAccountName": "Bad_SA"}, {"spec.template.spec.serviceAccountName": "bookinfo.reviews"}, "spec.template.spec.serviceAccountName", 'Invalid value: "Bad_SA": a lowercase RFC 1123 subdomain*'),
    Case("deploy-match-expression-operator", DEPLOY, {"spec.selector.matchExpressions": [{"key": "app", "operator": "Equals", "values": ["reviews"]}]}, {"spec.selector.matchExpressions": [{"key": "app", "operator": "In", "values": ["reviews"]}]}, "spec.selector.matchExpressions[0].operator", 'Unsupported value: "Equals": supported values: "In", "NotIn", "Exists", "DoesNotExist"'),
    Case("pod-no-containers", POD, {"spec.containers": []}, {}, "spec.containers", "Required value"),
    Case("pod-duplicate-container", POD, {"spec.containers[1]": {"name": "sleep"}}, {"spec.containers[1]": {"name": "sidecar"}}, "spec.containers[1].name", 'Duplicate value: "sleep"'),
    Case("meta-name", VS, {"metadata.name": "Bad_Name"}, {"metadata.name": "good.name"}, "metadata.name", 'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain*'),
    Case("meta-namespace", VS, {"metadata.namespace": "Prod"}, {"metadata.namespace": "prod"}, "metadata.namespace", 'Invalid value: "Prod": a lowercase RFC 1123 label*'),
    Case("meta-labels", VS, {"metadata.labels": {"bad key!": "x"}}, {"metadata.labels": {"app.kubernetes.io/name": "reviews"}}, "metadata.labels[bad key!]", 'invalid tag key: "bad key!"'),
    Case("meta-dry-run-on-vs", VS, {"metadata.annotations": {"istio.io/dry-run": "true"}}, {"metadata.annotations": {"note": "true"}}, "metadata.annotations[istio.io/dry-run]", "default/reviews has unsupported annotation istio.io/dry-run, please remove the annotation"),
    Case("meta-name-missing", VS, {"metadata.name": DELETE}, {}, "metadata.name", "name is required"),
    Case("meta-unknown-field", VS, {"metadata.nmae": "x"}, {}, "metadata.nmae", 'unknown field "nmae"'),
    Case("ns-name", NS, {"metadata.name": "a.b"}, {"metadata.name": "a-b"}, "metadata.name", 'Invalid value: "a.b": a lowercase RFC 1123 label*'),
    Case("top-level-unknown-field", VS, {"specs": {}}, {}, "specs", 'unknown field "specs"'),
    Case("api-version-unknown", VS, {"apiVersion": "networking.istio.io/v2"}, {"apiVersion": "networking.istio.io/v1alpha3"}, "apiVersion", 'unknown apiVersion "networking.istio.io/v2" for VirtualService*'),
]

ALL = PEER_AUTHENTICATION + REQUEST_AUTHENTICATION + AUTHORIZATION_POLICY + TELEMETRY + EXTENSIONS + KUBERNETES
