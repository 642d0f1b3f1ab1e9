"""productpage: the page a user sees, composed from details and reviews.

Behaviour Istio's tasks rely on, kept from the original: details with a 3 s timeout and no
retry; reviews with a 3 s timeout and one retry (so a hung reviews costs 6 s); the `user`
cookie set by `/login` travels as the `end-user` header; trace headers are forwarded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from ketch.samples.bookinfo.render import render_page
from ketch.samples.common import forward_headers, serve, server_args

DETAILS_URL = "http://details:9080"
REVIEWS_URL = "http://reviews:9080"
RATINGS_URL = "http://ratings:9080"
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
PRODUCTS = ({"id": 0, "title": "The Comedy of Errors",
             "descriptionHtml": '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">'
             "Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's"
             "</b> early plays. It is his shortest and one of his most farcical comedies, with"
             " a major part of the humour coming from slapstick and mistaken identity, in "
             "addition to puns and word play."},)


@dataclass(frozen=True)
class Upstreams:
    """Where productpage finds its peers: service names, as in Kubernetes."""

    details: str = DETAILS_URL
    reviews: str = REVIEWS_URL
    ratings: str = RATINGS_URL
    timeout: float = 3.0
    reviews_attempts: int = 2


def outbound_headers(request: web.Request) -> dict[str, str]:
    headers = forward_headers(request.headers)
    headers.pop("end-user", None)
    user = request.cookies.get("user", "")
    if user:
        headers["end-user"] = user
    return headers


class ProductPage:
    def __init__(self, upstreams: Upstreams) -> None:
        self.up = upstreams
        self.session: aiohttp.ClientSession | None = None

    async def _on_startup(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(trust_env=True)

    async def _on_cleanup(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def _get_json(self, url: str, headers: dict[str, str]) -> tuple[int, object]:
        """(status, body); status 0 when no response arrived (timeout, refused)."""
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(total=self.up.timeout)
        try:
            async with self.session.get(url, headers=headers, timeout=timeout) as resp:
                if resp.status != 200:
                    return resp.status, None
                return 200, await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return 0, None

    async def details(self, product_id: int, headers: dict[str, str]) -> tuple[int, dict]:
        status, body = await self._get_json(f"{self.up.details}/details/{product_id}", headers)
        if status == 200 and isinstance(body, dict):
            return 200, body
        return (status or 500), {"error": DETAILS_UNAVAILABLE}

    async def reviews(self, product_id: int, headers: dict[str, str]) -> tuple[int, dict]:
        status = 0
        for _ in range(self.up.reviews_attempts):
            status, body = await self._get_json(
                f"{self.up.reviews}/reviews/{product_id}", headers)
            if status == 200 and isinstance(body, dict):
                return 200, body
        return (status or 500), {"error": REVIEWS_UNAVAILABLE}

    async def ratings(self, product_id: int, headers: dict[str, str]) -> tuple[int, dict]:
        status, body = await self._get_json(f"{self.up.ratings}/ratings/{product_id}", headers)
        if status == 200 and isinstance(body, dict):
            return 200, body
        return (status or 500), {"error": "Sorry, product ratings are currently unavailable "
                                          "for this book."}

    # -- handlers ------------------------------------------------------------------------
    async def product_page(self, request: web.Request) -> web.Response:
        headers = outbound_headers(request)
        (d_status, details), (r_status, reviews) = await asyncio.gather(
            self.details(0, headers), self.reviews(0, headers))
        html = render_page(PRODUCTS[0], request.cookies.get("user", ""),
                           d_status, details, r_status, reviews)
        return web.Response(text=html, content_type="text/html")

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text='<html><body><h3>Bookinfo</h3>'
                            '<a href="/productpage?u=normal">Normal user</a> '
                            '<a href="/productpage?u=test">Test user</a></body></html>',
                            content_type="text/html")

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "Product page is healthy"})

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        user = str(form.get("username", ""))
        response = web.Response(status=302, headers={"Location": "/productpage"})
        response.set_cookie("user", user)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        response = web.Response(status=302, headers={"Location": "/productpage"})
        response.del_cookie("user")
        return response

    async def api_products(self, request: web.Request) -> web.Response:
        return web.json_response([{"id": p["id"], "title": p["title"],
                                   "descriptionHtml": p["descriptionHtml"]} for p in PRODUCTS])

    async def api_product(self, request: web.Request) -> web.Response:
        status, body = await self.details(_product_id(request), outbound_headers(request))
        return web.json_response(body, status=status)

    async def api_reviews(self, request: web.Request) -> web.Response:
        status, body = await self.reviews(_product_id(request), outbound_headers(request))
        return web.json_response(body, status=status)

    async def api_ratings(self, request: web.Request) -> web.Response:
        status, body = await self.ratings(_product_id(request), outbound_headers(request))
        return web.json_response(body, status=status)


def _product_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPBadRequest(text="please provide numeric product id")


def make_app(upstreams: Upstreams | None = None) -> web.Application:
    page = ProductPage(upstreams or Upstreams())
    app = web.Application()
    app.on_startup.append(page._on_startup)
    app.on_cleanup.append(page._on_cleanup)
    app.router.add_get("/", page.index)
    app.router.add_get("/health", page.health)
    app.router.add_get("/productpage", page.product_page)
    app.router.add_post("/login", page.login)
    app.router.add_get("/logout", page.logout)
    app.router.add_get("/api/v1/products", page.api_products)
    app.router.add_get("/api/v1/products/{id}", page.api_product)
    app.router.add_get("/api/v1/products/{id}/reviews", page.api_reviews)
    app.router.add_get("/api/v1/products/{id}/ratings", page.api_ratings)
    return app


def main() -> None:
    args = server_args("Bookinfo productpage", 9080).parse_args()
    serve(make_app(), args.host, args.port)


if __name__ == "__main__":
    main()
