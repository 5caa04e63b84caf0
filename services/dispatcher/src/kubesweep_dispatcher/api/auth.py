"""Bearer-token authentication for the API."""

from __future__ import annotations

import hmac

from flask import Request


def token_matches(request: Request, expected: str | None) -> bool:
    """True when no token is configured (loopback only) or the request carries it."""
    if expected is None:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), expected)


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
