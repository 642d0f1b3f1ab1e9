"""The whole-message scanners the HTTP/1.1 express path uses, or None for llhttp only.

They are compiled (`_http1_scan.pyx`, see its docstring); a build without a C compiler has
none. `KETCH_HTTP1_SCAN=off` in the environment turns them off too (every message then goes
through llhttp, as in a pure-Python build: the test suite runs the proxy tests both ways).
"""

from __future__ import annotations

import os
from collections.abc import Callable

scan_request: Callable | None = None
scan_response: Callable | None = None
compiled = False

try:
    from ketch.proxy import _http1_scan
except ImportError:  # pragma: no cover - a build without a C compiler
    _http1_scan = None
else:
    compiled = True

if _http1_scan is not None and os.environ.get("KETCH_HTTP1_SCAN", "on") != "off":
    scan_request = _http1_scan.scan_request
    scan_response = _http1_scan.scan_response
