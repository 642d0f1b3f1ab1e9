"""details: the book's bibliographic facts (`GET /details/<id>`)."""

from __future__ import annotations

from aiohttp import web

from ketch.samples.common import serve, server_args


def book_details(product_id: int) -> dict[str, object]:
    return {
        "id": product_id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    }


async def _details(request: web.Request) -> web.Response:
    try:
        product_id = int(request.match_info["id"])
    except ValueError:
        return web.json_response({"error": "please provide numeric product id"}, status=400)
    return web.json_response(book_details(product_id))


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "Details is healthy"})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/details/{id}", _details)
    app.router.add_get("/health", _health)
    return app


def main() -> None:
    args = server_args("Bookinfo details", 9080).parse_args()
    serve(make_app(), args.host, args.port)


if __name__ == "__main__":
    main()
