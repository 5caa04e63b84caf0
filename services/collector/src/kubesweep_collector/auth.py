"""Per-trial bearer tokens on every report."""

from __future__ import annotations

from flask import Request

from kubesweep.tokens import verify_trial_token


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_authorised(
    request: Request, signing_key: str, exp_id: str, trial_id: str, attempt: int
) -> bool:
    token = bearer_token(request)
    return token is not None and verify_trial_token(signing_key, token, exp_id, trial_id, attempt)
