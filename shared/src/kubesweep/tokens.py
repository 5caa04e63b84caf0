"""Per-trial tokens: ``HMAC(signing key, experiment, trial, attempt)``.

A token lets exactly one attempt of one trial report metrics; it is derived, never
stored, so Redis holds no secret."""

from __future__ import annotations

import hashlib
import hmac


def trial_token(signing_key: str, exp_id: str, trial_id: str, attempt: int) -> str:
    message = f"kubesweep/v1\x00{exp_id}\x00{trial_id}\x00{attempt}".encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def verify_trial_token(
    signing_key: str, token: str, exp_id: str, trial_id: str, attempt: int
) -> bool:
    expected = trial_token(signing_key, exp_id, trial_id, attempt)
    # As bytes: compare_digest raises TypeError for a str with non-ASCII characters, which
    # turned a forged header into a 500 instead of a 401.
    return hmac.compare_digest(expected.encode(), token.encode("utf-8", "surrogateescape"))
