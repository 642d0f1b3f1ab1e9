"""Bookinfo's behaviour, the parts Istio's tasks depend on: apps run on free ports and
call each other directly (upstream URLs overridden, which only tests do)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from sample_helpers import running

from ketch.samples.bookinfo import details, productpage, ratings, reviews


def recording_app(status: int = 200, delay: float = 0.0, body: object = None):
    """An upstream stand-in that records the headers it sees."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        if delay:
            await asyncio.sleep(delay)
        return web.json_response(body if body is not None else {}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app, seen


async def fetch(url: str, **kw) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s:
        async with s.get(url, **kw) as r:
            return r.status, await r.text()


async def test_details_and_ratings():
    async with running(details.make_app()) as d, running(ratings.make_app()) as r:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{d}/details/0") as resp:
                body = await resp.json()
                assert body["author"] == "William Shakespeare" and body["id"] == 0
            async with s.get(f"{r}/ratings/0") as resp:
                assert (await resp.json())["ratings"] == {"Reviewer1": 5, "Reviewer2": 4}
            async with s.get(f"{r}/ratings/x") as resp:
                assert resp.status == 400


async def test_reviews_versions_and_propagation():
    async with running(ratings.make_app()) as r:
        upstream, seen = recording_app(body={"ratings": {"Reviewer1": 3, "Reviewer2": 1}})
        async with running(upstream) as spy:
            async with running(reviews.make_app("v1", r, podname="reviews-v1-a")) as v1, \
                    running(reviews.make_app("v3", spy, podname="reviews-v3-a")) as v3:
                async with aiohttp.ClientSession() as s:
                    async with s.get(f"{v1}/reviews/0") as resp:
                        body = await resp.json()
                    assert body["podname"] == "reviews-v1-a"
                    assert all("rating" not in rv for rv in body["reviews"])
                    hdrs = {"end-user": "jason", "x-request-id": "rid-1",
                            "x-b3-traceid": "abc", "traceparent": "00-1-2-01",
                            "x-unrelated": "no"}
                    async with s.get(f"{v3}/reviews/0", headers=hdrs) as resp:
                        body = await resp.json()
            stars = [rv["rating"] for rv in body["reviews"]]
            assert stars == [{"stars": 3, "color": "red"}, {"stars": 1, "color": "red"}]
            assert seen[0]["end-user"] == "jason" and seen[0]["x-request-id"] == "rid-1"
            assert seen[0]["x-b3-traceid"] == "abc" and seen[0]["traceparent"] == "00-1-2-01"
            assert "x-unrelated" not in seen[0]


async def test_reviews_ratings_failure_and_timeout():
    broken, _ = recording_app(status=500)
    slow, _ = recording_app(delay=4.0)
    async with running(broken) as b, running(slow) as sl:
        async with running(reviews.make_app("v2", b)) as v2, \
                running(reviews.make_app("v3", sl)) as v3:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{v2}/reviews/0") as resp:
                    body = await resp.json()
                assert body["reviews"][0]["rating"] == {
                    "error": "Ratings service is currently unavailable"}
                t0 = time.monotonic()
                async with s.get(f"{v3}/reviews/0") as resp:
                    body = await resp.json()
                took = time.monotonic() - t0
    # v3 gives up on ratings after 2.5 s, well before the 4 s upstream delay.
    assert 2.3 <= took < 3.9, took
    assert body["reviews"][1]["rating"]["error"] == "Ratings service is currently unavailable"


async def test_productpage_renders_stars_and_served_by():
    async with running(details.make_app()) as d, running(ratings.make_app()) as r:
        async with running(reviews.make_app("v2", r, podname="reviews-v2-xyz")) as rv:
            up = productpage.Upstreams(details=d, reviews=rv, ratings=r)
            async with running(productpage.make_app(up)) as pp:
                status, html = await fetch(f"{pp}/productpage")
    assert status == 200
    assert "The Comedy of Errors" in html and "William Shakespeare" in html
    assert "Reviews served by:" in html and "reviews-v2-xyz" in html
    assert html.count('<span class="glyphicon glyphicon-star" style="color: black">') == 9
    assert "color: red" not in html


async def test_productpage_login_sets_user_and_end_user():
    upstream, seen = recording_app(body={"podname": "p", "reviews": []})
    async with running(upstream) as spy:
        up = productpage.Upstreams(details=spy, reviews=spy, ratings=spy)
        async with running(productpage.make_app(up)) as pp:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as s:
                async with s.post(f"{pp}/login", data={"username": "jason", "passwd": "x"},
                                  allow_redirects=False) as resp:
                    assert resp.status == 302
                    assert resp.cookies["user"].value == "jason"
                seen.clear()
                async with s.get(f"{pp}/productpage",
                                 headers={"x-request-id": "r-9"}) as resp:
                    html = await resp.text()
                assert "jason" in html
                assert {h.get("end-user") for h in seen} == {"jason"}
                assert {h.get("x-request-id") for h in seen} == {"r-9"}
                async with s.get(f"{pp}/logout", allow_redirects=False) as resp:
                    assert resp.status == 302
                seen.clear()
                async with s.get(f"{pp}/productpage") as resp:
                    await resp.text()
                assert all("end-user" not in h for h in seen)


async def test_productpage_unavailable_messages_and_one_retry():
    broken, seen = recording_app(status=503)
    async with running(broken) as b:
        up = productpage.Upstreams(details=b, reviews=b, ratings=b)
        async with running(productpage.make_app(up)) as pp:
            status, html = await fetch(f"{pp}/productpage")
    assert status == 200
    assert "Error fetching product details" in html
    assert "Sorry, product reviews are currently unavailable for this book." in html
    assert "Reviews served by" not in html
    # details once, reviews twice (one retry)
    assert len(seen) == 3


async def test_productpage_reviews_timeout_is_3s_with_one_retry():
    slow, seen = recording_app(delay=3.6, body={"reviews": []})
    async with running(details.make_app()) as d, running(slow) as sl:
        up = productpage.Upstreams(details=d, reviews=sl, ratings=sl)
        async with running(productpage.make_app(up)) as pp:
            t0 = time.monotonic()
            status, html = await fetch(f"{pp}/productpage")
            took = time.monotonic() - t0
    assert "Sorry, product reviews are currently unavailable for this book." in html
    assert 5.8 <= took < 7.0, took
    assert len(seen) == 2


def test_no_mesh_ports_or_addresses_in_app_code():
    from pathlib import Path
    import re

    import ketch.samples

    root = Path(ketch.samples.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        for port in ("15001", "15006", "15000", "15021", "15010", "15014"):
            assert port not in text, f"{path} mentions mesh port {port}"
        assert not re.search(r"\b\d+\.\d+\.\d+\.\d+\b", text.replace("0.0.0.0", "")), path
        assert "ketch.proxy" not in text and "ketch.controlplane" not in text, path
