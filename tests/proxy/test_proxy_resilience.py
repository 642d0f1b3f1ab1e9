"""Circuit breakers, retries, timeouts, outlier detection, faults and mirroring through a real proxy."""

from __future__ import annotations

import asyncio

import httpx
from aiohttp import web

from proxy_harness import FAULT, bootstrap, cluster, http_listener, route, running_proxy, upstream, vhost
from conftest import free_port


async def test_circuit_breaker_overflow_gives_503_uo_and_counts():
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(req: web.Request) -> web.Response:
        entered.set()
        await asyncio.wait_for(release.wait(), 10)
        return web.Response(text="ok")

    async with upstream(slow) as up:
        port = free_port()
        cb = {"thresholds": [{"maxConnections": 1, "maxPendingRequests": 1, "maxRequests": 100}]}
        b = bootstrap([http_listener(port, vhost(route("c")))], [cluster("c", up, circuitBreakers=cb)])
        async with running_proxy(b) as p, httpx.AsyncClient(timeout=10) as c:
            # one request holds the only connection; of the next two, one waits (pending) and one overflows
            tasks = [asyncio.create_task(c.get(f"http://127.0.0.1:{port}/0"))]
            await asyncio.wait_for(entered.wait(), 5)
            tasks += [asyncio.create_task(c.get(f"http://127.0.0.1:{port}/{i}")) for i in (1, 2)]
            done, _ = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            assert len(done) == 1
            release.set()
            results = await asyncio.gather(*tasks)
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 200, 503]
        overflow = next(r for r in results if r.status_code == 503)
        assert overflow.headers["x-envoy-overloaded"] == "true"
        assert "cluster.c.upstream_rq_pending_overflow: 1" in p.state.store.render_text()


async def test_retry_past_dead_endpoint_with_previous_hosts():
    dead = free_port()

    async def ok(req: web.Request) -> web.Response:
        return web.Response(text="alive", headers={"x-attempt": req.headers.get("x-envoy-attempt-count", "")})

    async with upstream(ok) as up:
        port = free_port()
        rp = {"retryOn": "connect-failure,reset,retriable-status-codes", "numRetries": 2,
              "retriableStatusCodes": [503],
              "retryHostPredicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                      "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
              "hostSelectionRetryMaxAttempts": "5"}
        b = bootstrap([http_listener(port, vhost(route("c", retryPolicy=rp), includeRequestAttemptCount=True))],
                      [cluster("c", dead, up)])
        async with running_proxy(b) as p, httpx.AsyncClient() as c:
            for _ in range(6):
                r = await c.get(f"http://127.0.0.1:{port}/")
                assert r.status_code == 200 and r.text == "alive"
        st = p.state.snapshot.clusters["c"].stats
        # round robin sends some first tries to the dead host; each was retried elsewhere
        assert st.upstream_cx_connect_fail.value >= 1
        assert st.upstream_rq_retry.value >= 1


async def test_retry_on_5xx_and_limit_exceeded_flag():
    calls = []

    async def flaky(req: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(status=503 if len(calls) % 3 else 200, text=str(len(calls)))

    async with upstream(flaky) as up:
        port = free_port()
        rp = {"retryOn": "5xx", "numRetries": 2}
        rp1 = {"retryOn": "5xx", "numRetries": 1}
        b = bootstrap([http_listener(port, vhost(route("c", prefix="/two", retryPolicy=rp),
                                                 route("c", prefix="/one", retryPolicy=rp1)),
                                     hcm_extra={"accessLog": [{"name": "envoy.access_loggers.stdout"}]})],
                      [cluster("c", up)])
        async with running_proxy(b) as p, httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{port}/two")
            assert r.status_code == 200 and len(calls) == 3
            r = await c.get(f"http://127.0.0.1:{port}/one")
            assert r.status_code == 503 and len(calls) == 5
        assert " 503 URX " in p.access_log.getvalue()


async def test_per_try_timeout_then_success_and_route_timeout():
    n = []

    async def slow_first(req: web.Request) -> web.Response:
        n.append(1)
        if req.path == "/always" or len(n) == 1:
            await asyncio.sleep(2)
        return web.Response(text="fast")

    async with upstream(slow_first) as up:
        port = free_port()
        rp = {"retryOn": "5xx", "numRetries": 2, "perTryTimeout": "0.3s"}
        b = bootstrap([http_listener(port, vhost(route("c", prefix="/always", timeout="0.5s"),
                                                 route("c", retryPolicy=rp, timeout="5s")))],
                      [cluster("c", up)])
        async with running_proxy(b) as p, httpx.AsyncClient(timeout=10) as c:
            r = await c.get(f"http://127.0.0.1:{port}/retry")
            assert r.status_code == 200 and r.text == "fast" and len(n) >= 2  # the slow first try was cut
            r = await c.get(f"http://127.0.0.1:{port}/always")
            assert r.status_code == 504 and r.text == "upstream request timeout"
        stats = p.state.store.render_text()
        assert p.state.snapshot.clusters["c"].stats.upstream_rq_per_try_timeout.value >= 1
        assert "cluster.c.upstream_rq_timeout: 1" in stats


async def test_outlier_ejection_and_return():
    bad_calls = []

    async def bad(req: web.Request) -> web.Response:
        bad_calls.append(1)
        return web.Response(status=500)

    async def good(req: web.Request) -> web.Response:
        return web.Response(text="good")

    async with upstream(bad) as bad_port, upstream(good) as good_port:
        port = free_port()
        od = {"consecutive5xx": 3, "interval": "0.2s", "baseEjectionTime": "2s", "maxEjectionPercent": 50}
        b = bootstrap([http_listener(port, vhost(route("c")))],
                      [cluster("c", bad_port, good_port, outlierDetection=od)])
        async with running_proxy(b) as p, httpx.AsyncClient() as c:
            for _ in range(12):
                await c.get(f"http://127.0.0.1:{port}/")
            assert len(bad_calls) == 3  # ejected after three consecutive 5xx; the rest went to the good host
            rt = p.state.snapshot.clusters["c"]
            assert any(h.ejected for h in rt.hosts.values())
            admin = await c.get(f"http://127.0.0.1:{p.admin_bound}/clusters")
            assert "failed_outlier_check" in admin.text
            for _ in range(200):  # returns after base_ejection_time, at an interval sweep
                await asyncio.sleep(0.1)
                if not any(h.ejected for h in rt.hosts.values()):
                    break
            assert not any(h.ejected for h in rt.hosts.values())
            for _ in range(4):
                await c.get(f"http://127.0.0.1:{port}/")
            assert len(bad_calls) > 3


async def test_fault_abort_and_delay_percentages():
    async def ok(req: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with upstream(ok) as up:
        port = free_port()
        abort = {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
                 "abort": {"httpStatus": 418, "percentage": {"numerator": 30}}}
        delay = {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
                 "delay": {"fixedDelay": "0.2s", "percentage": {"numerator": 100}}}
        b = bootstrap([http_listener(port, vhost(
            {**route("c", prefix="/abort"), "typedPerFilterConfig": {"envoy.filters.http.fault": abort}},
            {**route("c", prefix="/delay"), "typedPerFilterConfig": {"envoy.filters.http.fault": delay}},
            route("c")), filters=[FAULT])], [cluster("c", up)])
        async with running_proxy(b), httpx.AsyncClient() as c:
            codes = [(await c.get(f"http://127.0.0.1:{port}/abort")).status_code for _ in range(400)]
            aborted = codes.count(418)
            # Binomial(400, 0.3): mean 120, sd ~9.2; 6 sd either side
            assert 65 <= aborted <= 175 and codes.count(200) == 400 - aborted
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            r = await c.get(f"http://127.0.0.1:{port}/delay")
            assert r.status_code == 200 and loop.time() - t0 >= 0.19
            assert (await c.get(f"http://127.0.0.1:{port}/plain")).status_code == 200


async def test_mirror_sends_shadow_copy():
    seen: list[tuple[str, str, bytes]] = []
    got = asyncio.Event()

    async def main(req: web.Request) -> web.Response:
        return web.Response(text="main")

    async def shadow(req: web.Request) -> web.Response:
        seen.append((req.host, req.path, await req.read()))
        got.set()
        return web.Response(status=500, text="ignored")

    async with upstream(main) as mp, upstream(shadow) as sp:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("main", requestMirrorPolicies=[{"cluster": "shadow"}])))],
                      [cluster("main", mp), cluster("shadow", sp)])
        async with running_proxy(b), httpx.AsyncClient() as c:
            r = await c.post(f"http://127.0.0.1:{port}/m", content=b"payload", headers={"host": "svc:8080"})
            assert r.status_code == 200 and r.text == "main"
            await asyncio.wait_for(got.wait(), 5)
        assert seen == [("svc-shadow:8080", "/m", b"payload")]


async def test_upstream_idle_timeout_closes_pooled_connections():
    async def ok(req: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with upstream(ok) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c")))],
                      [cluster("c", up, commonHttpProtocolOptions={"idleTimeout": "0.2s"})])
        async with running_proxy(b) as p, httpx.AsyncClient() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 200
            st = p.state.snapshot.clusters["c"].stats
            for _ in range(50):
                if st.upstream_cx_idle_timeout.value:
                    break
                await asyncio.sleep(0.05)
            assert st.upstream_cx_idle_timeout.value == 1
            assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 200
            assert st.upstream_cx_total.value == 2
