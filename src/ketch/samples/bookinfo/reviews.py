"""reviews: two reviews of the book; the version decides what it does with ratings.

v1 does not call ratings; v2 calls it with a 10 s timeout and shows black stars; v3 with a
2.5 s timeout and red stars (as the original Java service). The version comes from
`SERVICE_VERSION` (the original bakes it into the image).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from ketch.samples.common import forward_headers, pod_name, serve, server_args

RATINGS_URL = "http://ratings:9080"
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"

REVIEWS = (
    ("Reviewer1", "An extremely entertaining play by Shakespeare. "
     "The slapstick humour is refreshing!"),
    ("Reviewer2", "Absolutely fun and entertaining. "
     "The play lacks thematic depth when compared to other plays by Shakespeare."),
)


@dataclass(frozen=True)
class Flavour:
    """What one version of reviews does."""

    ratings_enabled: bool
    star_color: str
    ratings_timeout: float


FLAVOURS = {
    "v1": Flavour(False, "black", 10.0),
    "v2": Flavour(True, "black", 10.0),
    "v3": Flavour(True, "red", 2.5),
}


def render_reviews(
    product_id: int, flavour: Flavour, ratings: dict[str, int] | None, podname: str
) -> dict[str, object]:
    """The JSON body; `ratings` None means the ratings call failed."""
    reviews = []
    for reviewer, text in REVIEWS:
        review: dict[str, object] = {"reviewer": reviewer, "text": text}
        if flavour.ratings_enabled:
            if ratings is None:
                review["rating"] = {"error": RATINGS_UNAVAILABLE}
            else:
                review["rating"] = {"stars": ratings.get(reviewer, -1), "color": flavour.star_color}
        reviews.append(review)
    return {"id": str(product_id), "podname": podname, "clustername": "null",
            "reviews": reviews}


class ReviewsApp:
    def __init__(self, flavour: Flavour, ratings_url: str, podname: str) -> None:
        self.flavour = flavour
        self.ratings_url = ratings_url
        self.podname = podname
        self.session: aiohttp.ClientSession | None = None

    async def _on_startup(self, app: web.Application) -> None:
        # trust_env: in process mode the runtime sets HTTP_PROXY to the sidecar.
        self.session = aiohttp.ClientSession(trust_env=True)

    async def _on_cleanup(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def fetch_ratings(self, product_id: int, headers: dict[str, str]) -> dict | None:
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(total=self.flavour.ratings_timeout)
        try:
            async with self.session.get(
                f"{self.ratings_url}/ratings/{product_id}", headers=headers, timeout=timeout
            ) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json(content_type=None)
                return dict(body.get("ratings", {}))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None

    async def reviews(self, request: web.Request) -> web.Response:
        try:
            product_id = int(request.match_info["id"])
        except ValueError:
            return web.json_response({"error": "please provide numeric product id"}, status=400)
        ratings = None
        if self.flavour.ratings_enabled:
            ratings = await self.fetch_ratings(product_id, forward_headers(request.headers))
        return web.json_response(render_reviews(product_id, self.flavour, ratings, self.podname))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "Reviews is healthy"})


def make_app(version: str = "v1", ratings_url: str = RATINGS_URL,
             podname: str | None = None) -> web.Application:
    flavour = FLAVOURS.get(version, FLAVOURS["v1"])
    handler = ReviewsApp(flavour, ratings_url, podname or pod_name())
    app = web.Application()
    app.on_startup.append(handler._on_startup)
    app.on_cleanup.append(handler._on_cleanup)
    app.router.add_get("/reviews/{id}", handler.reviews)
    app.router.add_get("/health", handler.health)
    return app


def main() -> None:
    args = server_args("Bookinfo reviews", 9080).parse_args()
    serve(make_app(os.environ.get("SERVICE_VERSION", "v1")), args.host, args.port)


if __name__ == "__main__":
    main()
