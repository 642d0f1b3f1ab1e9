"""An httpbin-like service: /get, /headers, /status/N, /delay/N, /anything, /ip."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from ketch.samples.common import pod_name, serve, server_args

MAX_DELAY = 10.0


def _headers(request: web.Request) -> dict[str, str]:
    # httpbin shows header names canonicalised; repeated headers are joined.
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        key = "-".join(part.capitalize() for part in name.split("-"))
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _origin(request: web.Request) -> str:
    forwarded = request.headers.get("X-Forwarded-For")
    return forwarded.split(",")[0].strip() if forwarded else (request.remote or "")


def _echo(request: web.Request) -> dict[str, object]:
    return {"args": dict(request.query), "headers": _headers(request),
            "origin": _origin(request), "url": str(request.url)}


async def get(request: web.Request) -> web.Response:
    return web.json_response(_echo(request))


async def headers(request: web.Request) -> web.Response:
    return web.json_response({"headers": _headers(request)})


async def ip(request: web.Request) -> web.Response:
    return web.json_response({"origin": _origin(request)})


async def status(request: web.Request) -> web.Response:
    try:
        code = int(request.match_info["code"])
    except ValueError:
        return web.json_response({"error": "invalid status"}, status=400)
    if not 100 <= code <= 599:
        return web.json_response({"error": "invalid status"}, status=400)
    return web.Response(status=code)


async def delay(request: web.Request) -> web.Response:
    try:
        seconds = min(float(request.match_info["n"]), MAX_DELAY)
    except ValueError:
        return web.json_response({"error": "invalid delay"}, status=400)
    await asyncio.sleep(max(0.0, seconds))
    return web.json_response(_echo(request))


async def anything(request: web.Request) -> web.Response:
    data = await request.read()
    text = data.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    body = _echo(request)
    body.update({"method": request.method, "data": text, "json": parsed,
                 "form": dict(await request.post()) if request.content_type ==
                 "application/x-www-form-urlencoded" else {}})
    return web.json_response(body)


async def hostname(request: web.Request) -> web.Response:
    return web.json_response({"hostname": pod_name()})


@web.middleware
async def access_log(request: web.Request, handler):
    """One line per request on stdout, as go-httpbin logs (the mirroring task reads it)."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        print(f"{request.method} {request.path_qs} {status} host={request.host}", flush=True)


async def index(request: web.Request) -> web.Response:
    return web.Response(text="httpbin (ketch sample)\n")


def make_app() -> web.Application:
    app = web.Application(middlewares=[access_log])
    app.router.add_get("/", index)
    app.router.add_get("/hostname", hostname)
    app.router.add_get("/get", get)
    app.router.add_get("/headers", headers)
    app.router.add_get("/ip", ip)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_route("*", "/delay/{n}", delay)
    app.router.add_route("*", "/anything", anything)
    app.router.add_route("*", "/anything/{tail:.*}", anything)
    return app


def main() -> None:
    args = server_args("httpbin-like service", 8080).parse_args()
    serve(make_app(), args.host, args.port)


if __name__ == "__main__":
    main()
