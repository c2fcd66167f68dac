"""The bearer token that guards the worker's web pages naming entities.

``/alerts`` (entity ids) and ``/status`` (partitions and positions) require
``Authorization: Bearer <token>`` when ``KUZET_WEB_TOKEN`` (or
``KUZET_WEB_TOKEN_FILE``) is set; a request without it gets 401. ``/metrics``
and ``/healthz`` stay open: Prometheus and health checks read them, and they
carry counts under bounded labels, never an id. The routes themselves are in
:meth:`streams.worker.Worker._serve_web`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The scheme of RFC 6750; its name is case-insensitive (RFC 9110, 11.1).
SCHEME = "bearer"
#: What a refused request is told (RFC 6750, 3): which scheme, never the token.
CHALLENGE = 'Bearer realm="kuzet"'


def authorised(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries the bearer ``token``.

    Compared with :func:`hmac.compare_digest` over SHA-256 digests, so the time
    taken tells neither where a guess goes wrong nor the token's length.

    >>> authorised("Bearer s3cret", "s3cret"), authorised("bearer  s3cret", "s3cret")
    (True, True)
    >>> authorised("Bearer s3cre", "s3cret"), authorised("Basic s3cret", "s3cret")
    (False, False)
    >>> authorised(None, "s3cret"), authorised("s3cret", "s3cret"), authorised("Bearer", "s3cret")
    (False, False, False)
    """
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != SCHEME:
        return False
    return hmac.compare_digest(_digest(given.strip()), _digest(token))


def guard(handler: Handler, token: str | None) -> Handler:
    """``handler`` behind the bearer ``token``; unchanged when there is no token."""
    if token is None:
        return handler

    async def guarded(request: web.Request) -> web.StreamResponse:
        if authorised(request.headers.get("Authorization"), token):
            return await handler(request)
        return web.json_response(
            {"error": "this page needs 'Authorization: Bearer <KUZET_WEB_TOKEN>'"},
            status=401,
            headers={"WWW-Authenticate": CHALLENGE},
        )

    return guarded


def is_loopback(host: str) -> bool:
    """Whether only this machine reaches ``host`` (open pages there are no warning).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback(""), is_loopback("kuzet.example")
    (False, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _digest(text: str) -> bytes:
    # "replace": a header aiohttp decoded with surrogates still compares (and fails).
    return hashlib.sha256(text.encode("utf-8", "replace")).digest()
