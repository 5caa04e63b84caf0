"""Bearer-token authentication for the API."""

from __future__ import annotations

import hmac

from flask import Request


def token_matches(request: Request, expected: str | None) -> bool:
    """True when no token is configured (loopback only) or the request carries it."""
    if expected is None:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    # An empty configured token must not let an empty header through.
    return (
        scheme.lower() == "bearer"
        and bool(token and expected)
        and hmac.compare_digest(token.encode(), expected.encode())
    )


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
