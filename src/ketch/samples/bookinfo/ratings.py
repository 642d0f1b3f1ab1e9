"""ratings: the stars each reviewer gave (`GET /ratings/<id>`)."""

from __future__ import annotations

from aiohttp import web

from ketch.samples.common import serve, server_args

RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


async def _ratings(request: web.Request) -> web.Response:
    try:
        product_id = int(request.match_info["id"])
    except ValueError:
        return web.json_response({"error": "please provide numeric product ID"}, status=400)
    return web.json_response({"id": product_id, "ratings": dict(RATINGS)})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "Ratings is healthy"})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/ratings/{id}", _ratings)
    app.router.add_get("/health", _health)
    return app


def main() -> None:
    args = server_args("Bookinfo ratings", 9080).parse_args()
    serve(make_app(), args.host, args.port)


if __name__ == "__main__":
    main()
