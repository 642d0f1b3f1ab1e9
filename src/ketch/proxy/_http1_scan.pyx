# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Whole-message scanners for the HTTP/1.1 express path (compiled; optional).

The proxy's codec is llhttp (httptools), driven through Python callbacks: five or more
C -> Python calls and a dozen small objects per message. Most messages in a mesh are one
read holding one small, plain message, and for exactly that shape these scanners do the
work in one C pass and return what the express path needs.

They are *conservative*: they accept a subset of what llhttp accepts (HTTP/1.1 only, CRLF
line ends, token header names followed directly by the colon, visible-ASCII/obs-text
values, no obs-fold, no Transfer-Encoding, exactly the framing asked for) and return None
for anything else, which then goes to llhttp exactly as before. So strictness is never
weaker than llhttp's: an input either parses here the way llhttp parses it or is not
touched (tests/proxy/test_http1_scan.py checks that against llhttp, input by input).

Without a C compiler the module is simply absent and every message takes llhttp.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.string cimport memcmp, memcpy

cdef unsigned char TCHAR[256]   # RFC 9110 token characters
cdef unsigned char VCHAR[256]   # field-value characters: VCHAR, obs-text, SP, HTAB
cdef unsigned char LOWER[256]

cdef void _init_tables():
    cdef int c
    cdef bytes extra = b"!#$%&'*+-.^_`|~"
    for c in range(256):
        TCHAR[c] = 0
        VCHAR[c] = 1 if (c == 9 or c == 32 or (33 <= c <= 126) or c >= 128) else 0
        LOWER[c] = c + 32 if 65 <= c <= 90 else c
    for c in range(ord("0"), ord("9") + 1):
        TCHAR[c] = 1
    for c in range(ord("a"), ord("z") + 1):
        TCHAR[c] = 1
        TCHAR[c - 32] = 1
    for c in extra:
        TCHAR[c] = 1

_init_tables()

# names (lower case) of response header lines the proxy drops (hop by hop)
cdef tuple HOP_BY_HOP = (b"keep-alive", b"te", b"trailer", b"upgrade", b"proxy-authenticate",
                         b"proxy-authorization")  # Connection, Proxy-Connection: see scan_response

cdef enum:
    MAX_HEAD = 8192  # a longer head is not the common case: llhttp takes it
    MAX_LINES = 100


cdef inline bint _is(const unsigned char* p, Py_ssize_t n, bytes word):
    """p[:n] (a header name or value) equals `word` (lower case), ignoring ASCII case."""
    cdef Py_ssize_t i
    cdef const unsigned char* q
    if n != PyBytes_GET_SIZE(word):
        return False
    q = <const unsigned char*> PyBytes_AS_STRING(word)
    for i in range(n):
        if LOWER[p[i]] != q[i]:
            return False
    return True


cdef inline Py_ssize_t _header_line(const unsigned char* p, Py_ssize_t n, Py_ssize_t i,
                                    Py_ssize_t* name_end, Py_ssize_t* v0, Py_ssize_t* v1) noexcept:
    """The header line `name:` OWS value CRLF starting at p[i] (the name a token, directly
    followed by the colon; the value VCHAR/obs-text/SP/HTAB): sets the name's end and the
    value's span and returns where the next line starts, or -1 for a line the scanners leave
    to llhttp. llhttp keeps trailing blanks in the value: so does the span (framing values
    with them are then declined)."""
    cdef Py_ssize_t start = i
    while i < n and TCHAR[p[i]]:
        i += 1
    if i == start or i >= n or p[i] != 58:  # empty name, or not `name:`
        return -1
    name_end[0] = i
    i += 1
    while i < n and (p[i] == 32 or p[i] == 9):
        i += 1
    v0[0] = i
    while i < n and p[i] != 13:
        if not VCHAR[p[i]]:
            return -1
        i += 1
    if i + 1 >= n or p[i + 1] != 10:
        return -1
    v1[0] = i
    return i + 2


def scan_response(bytes data, bint drop_server, dict status_lines, bytes tail):
    """One whole plain response filling `data`: `(status, out, body_length)`, else None.

    Accepted: `HTTP/1.1 <2xx/3xx but 204/304> <reason>`, header lines as described in the
    module docstring, exactly one Content-Length (digits), no Transfer-Encoding or
    Proxy-Connection, no Connection header or `Connection: keep-alive`, and the body filling
    the rest of `data` exactly. `out` is the response to write downstream, in one piece: the
    proxy's status line (`status_lines[status]`; a status missing there is declined), the
    header lines minus the hop-by-hop ones (and `server` when `drop_server`) as
    `http1.forward_block` gives them, `tail` (the proxy's own header lines and the blank
    line), and the body."""
    cdef const unsigned char* p = <const unsigned char*> PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i, j, k, line_start, name_end, v0, v1, head_end = -1
    cdef Py_ssize_t lines = 0, out_len = 0, copy_from
    cdef int status
    cdef long long length = -1
    cdef bint drop
    cdef bytes name, out, line
    cdef Py_ssize_t body_length
    cdef char* q
    cdef Py_ssize_t spans[2 * (MAX_LINES + 1)]
    cdef int nspans = 0
    if n < 17 or memcmp(p, b"HTTP/1.1 ", 9) != 0:
        return None
    if not (48 <= p[9] <= 57 and 48 <= p[10] <= 57 and 48 <= p[11] <= 57) or p[12] != 32:
        return None
    status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
    if status < 200 or status >= 400 or status == 204 or status == 304:
        return None
    i = 13
    while i < n and p[i] != 13:  # the reason phrase
        if not VCHAR[p[i]]:
            return None
        i += 1
    if i + 1 >= n or p[i + 1] != 10:
        return None
    i += 2
    copy_from = i - 2  # forwarded lines start with the CRLF that ends the previous line
    while True:
        if i + 1 >= n or i > MAX_HEAD:
            return None
        if p[i] == 13:  # the empty line: end of head
            if p[i + 1] != 10:
                return None
            head_end = i
            break
        line_start = i
        i = _header_line(p, n, i, &name_end, &v0, &v1)
        if i < 0:
            return None
        lines += 1
        if lines > MAX_LINES:
            return None
        k = name_end - line_start
        drop = False
        if k == 14 and _is(p + line_start, k, b"content-length"):
            if length >= 0 or v1 == v0 or v1 - v0 > 15:
                return None
            length = 0
            for j in range(v0, v1):
                if not (48 <= p[j] <= 57):
                    return None
                length = length * 10 + (p[j] - 48)
        elif k == 17 and _is(p + line_start, k, b"transfer-encoding"):
            return None
        elif k == 16 and _is(p + line_start, k, b"proxy-connection"):
            return None  # llhttp reads it like Connection
        elif k == 10 and _is(p + line_start, k, b"connection"):
            if not _is(p + v0, v1 - v0, b"keep-alive"):
                return None
            drop = True
        elif drop_server and k == 6 and _is(p + line_start, k, b"server"):
            drop = True
        else:
            for name in HOP_BY_HOP:
                if _is(p + line_start, k, name):
                    drop = True
                    break
        if drop:
            # forward [copy_from, line_start - 2): the lines before this one
            if line_start - 2 > copy_from:
                spans[nspans] = copy_from
                spans[nspans + 1] = line_start - 2
                nspans += 2
                out_len += line_start - 2 - copy_from
            copy_from = i - 2
    if length < 0 or head_end + 2 + length != n:
        return None
    if head_end - 2 > copy_from:
        spans[nspans] = copy_from
        spans[nspans + 1] = head_end - 2
        nspans += 2
        out_len += head_end - 2 - copy_from
    line = status_lines.get(status)
    if line is None:
        return None
    body_length = n - head_end - 2
    out = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(line) + out_len + PyBytes_GET_SIZE(tail) + body_length)
    q = PyBytes_AS_STRING(out)
    memcpy(q, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))
    k = PyBytes_GET_SIZE(line)
    for j in range(0, nspans, 2):
        memcpy(q + k, p + spans[j], spans[j + 1] - spans[j])
        k += spans[j + 1] - spans[j]
    memcpy(q + k, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail))
    k += PyBytes_GET_SIZE(tail)
    memcpy(q + k, p + head_end + 2, body_length)
    return status, out, body_length


# methods a bodiless request may use here (CONNECT and the WebDAV ones go to llhttp)
cdef dict METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}


def scan_request(bytes data):
    """One whole bodiless request filling `data`: `(method, target, headers, hdrs, keep_alive,
    lines)`, else None.

    Accepted: `<method> /<target> HTTP/1.1` (origin form, visible ASCII), header lines as in
    the module docstring with a Host and without Content-Length, Transfer-Encoding, Upgrade,
    Expect or Proxy-Connection, no repeated header name, a Connection header (if any) of exactly
    `keep-alive` or `close`, and nothing after the empty line. `headers` is a list of
    (lower-case name, value) pairs in order and `hdrs` the same as a dict, as the llhttp
    callbacks build them (latin-1 decoded, the value without leading blanks). `lines` is
    the same header list as bytes, `name: value` + CRLF each (what http1._header_lines
    writes for it): forwarded as is when nothing is to change."""
    cdef const unsigned char* p = <const unsigned char*> PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i = 0, t0, line_start, name_end, v0, v1, k, j
    cdef bint keep_alive = True, host = False
    cdef list headers = []
    cdef dict hdrs = {}
    cdef str name, value
    cdef char lowered[64]
    cdef Py_ssize_t spans[4 * MAX_LINES]  # name start, name length, value start, value length
    cdef Py_ssize_t nheaders = 0, size = 0, at
    cdef bytes lines
    cdef char* q
    if n < 16 or n > MAX_HEAD:
        return None
    while i < n and i < 8 and 65 <= p[i] <= 90:
        i += 1
    if i >= n or p[i] != 32:
        return None
    method = METHODS.get(data[:i])
    if method is None:
        return None
    i += 1
    t0 = i
    if p[i] != 47:  # origin form only
        return None
    while i < n and 33 <= p[i] <= 126:
        i += 1
    if i + 11 > n or memcmp(p + i, b" HTTP/1.1\r\n", 11) != 0:
        return None
    target = (data[t0:i]).decode("latin-1")
    i += 11
    while True:
        if i + 1 >= n:
            return None
        if p[i] == 13:
            if p[i + 1] != 10 or i + 2 != n:
                return None
            break
        line_start = i
        i = _header_line(p, n, i, &name_end, &v0, &v1)
        if i < 0 or name_end - line_start > 64:
            return None
        k = name_end - line_start
        for j in range(k):
            lowered[j] = LOWER[p[line_start + j]]
        name = (<bytes> lowered[:k]).decode("latin-1")
        if name in hdrs or len(headers) >= MAX_LINES:
            return None
        if (name == "content-length" or name == "transfer-encoding" or name == "upgrade" or name == "expect"
                or name == "proxy-connection"):  # llhttp reads Proxy-Connection like Connection
            return None
        if name == "connection":
            if _is(p + v0, v1 - v0, b"close"):
                keep_alive = False
            elif not _is(p + v0, v1 - v0, b"keep-alive"):
                return None
        elif name == "host":
            host = True
        value = (data[v0:v1]).decode("latin-1")
        headers.append((name, value))
        hdrs[name] = value
        spans[4 * nheaders] = line_start
        spans[4 * nheaders + 1] = k
        spans[4 * nheaders + 2] = v0
        spans[4 * nheaders + 3] = v1 - v0
        nheaders += 1
        size += k + v1 - v0 + 4
    if not host:
        return None
    lines = PyBytes_FromStringAndSize(NULL, size)
    q = PyBytes_AS_STRING(lines)
    at = 0
    for j in range(nheaders):
        for k in range(spans[4 * j + 1]):
            q[at + k] = LOWER[p[spans[4 * j] + k]]
        at += spans[4 * j + 1]
        q[at] = 58
        q[at + 1] = 32
        at += 2
        memcpy(q + at, p + spans[4 * j + 2], spans[4 * j + 3])
        at += spans[4 * j + 3]
        q[at] = 13
        q[at + 1] = 10
        at += 2
    return method, target, headers, hdrs, keep_alive, lines
