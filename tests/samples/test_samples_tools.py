"""httpbin-like service, fortio-like load client, tcp-echo."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp

from ketch.samples import fortio, httpbin, tcp_echo
from sample_helpers import running


async def test_httpbin_endpoints():
    async with running(httpbin.make_app()) as hb:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{hb}/get?a=1", headers={"x-custom": "v"}) as r:
                body = await r.json()
                assert body["args"] == {"a": "1"} and body["headers"]["X-Custom"] == "v"
            async with s.get(f"{hb}/headers") as r:
                assert "Host" in (await r.json())["headers"]
            async with s.get(f"{hb}/status/418") as r:
                assert r.status == 418
            async with s.post(f"{hb}/anything/x", json={"k": 1}) as r:
                body = await r.json()
                assert body["method"] == "POST" and body["json"] == {"k": 1}
            async with s.get(f"{hb}/ip") as r:
                assert (await r.json())["origin"] == "127.0.0.1"
            t0 = asyncio.get_running_loop().time()
            async with s.get(f"{hb}/delay/1") as r:
                assert r.status == 200
            assert asyncio.get_running_loop().time() - t0 >= 0.9


async def test_fortio_load_histogram():
    async with running(httpbin.make_app()) as hb:
        ok = await fortio.run_load(f"{hb}/get", concurrency=3, calls=12, qps=0, duration=0)
        bad = await fortio.run_load(f"{hb}/status/503", concurrency=2, calls=5, qps=0,
                                    duration=0)
    assert ok.codes == {200: 12} and len(ok.durations) == 12
    assert bad.codes == {503: 5}
    assert bad.histogram_lines() == ["Code 503 : 5 (100.0 %)"]
    assert ok.to_json()["RetCodes"] == {"200": 12}


async def test_fortio_counts_connection_errors():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    res = await fortio.run_load(f"http://127.0.0.1:{port}/", concurrency=1, calls=2,
                                qps=0, duration=0)
    assert res.codes == {fortio.ERROR_CODE: 2}


async def test_fortio_cli_json(tmp_path):
    async with running(httpbin.make_app()) as hb:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ketch.samples.fortio", "load", "-c", "2", "-qps", "0",
            "-n", "6", "-json", "-", f"{hb}/status/201",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["RetCodes"] == {"201": 6}
    assert b"Code 201 : 6 (100.0 %)" in err


async def test_tcp_echo_prefixes_each_line():
    servers = await tcp_echo.start([0], "one", host="127.0.0.1")
    port = servers[0].sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello world\nsecond\n")
        await writer.drain()
        assert await reader.readline() == b"one hello world\n"
        assert await reader.readline() == b"one second\n"
        writer.close()
    finally:
        for s in servers:
            s.close()


async def test_httpbin_hostname_and_access_log(capsys, monkeypatch):
    monkeypatch.setenv("POD_NAME", "httpbin-v1-abcde")
    async with running(httpbin.make_app()) as hb:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{hb}/hostname") as r:
                assert (await r.json()) == {"hostname": "httpbin-v1-abcde"}
            async with s.get(f"{hb}/status/404?x=1") as r:
                assert r.status == 404
    out = capsys.readouterr().out
    assert "GET /hostname 200" in out and "GET /status/404?x=1 404" in out
