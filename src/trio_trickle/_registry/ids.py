"""Runner, session and proxy IDs and per-runner secrets (LR-025, LR-026).

As go-livepeer derives them: IDs are the lowercase unpadded base32 of fresh
random bytes; every secret of a runner is the base32 HMAC-SHA256 of one 32-byte
seed kept per runner, under a label (``heartbeat``, ``session:<id>``,
``trickle:o2r``), so a leaked session token reveals nothing of the others.
Randomness comes from an injected :class:`RandomSource` so tests are repeatable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Protocol

import attrs

__all__: list[str] = []

SEED_BYTES = 32
ID_BYTES = 5
PROXY_ID_BYTES = 16
O2R_SECRET_CHARS = 16


class RandomSource(Protocol):
    """Where the registry gets random bytes (``secrets.token_bytes`` in production)."""

    def token_bytes(self, n: int) -> bytes: ...


@attrs.frozen
class SystemRandom:
    """The operating system's CSPRNG."""

    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)


def b32(data: bytes) -> str:
    """Lowercase unpadded base32, go-livepeer's spelling of IDs and secrets."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def new_runner_id(random: RandomSource) -> str:
    return "runner_" + b32(random.token_bytes(ID_BYTES))


def new_session_id(random: RandomSource) -> str:
    return "session_" + b32(random.token_bytes(ID_BYTES))


def new_proxy_id(random: RandomSource) -> str:
    """26 characters: 16 random bytes (LR-125)."""
    return b32(random.token_bytes(PROXY_ID_BYTES))


def derive_secret(seed: bytes, label: str) -> str:
    return b32(hmac.new(seed, label.encode("utf-8"), hashlib.sha256).digest())


def heartbeat_secret(seed: bytes) -> str:
    return derive_secret(seed, "heartbeat")


def session_token(seed: bytes, session_id: str) -> str:
    return derive_secret(seed, "session:" + session_id)


def o2r_channel_name(runner_id: str, seed: bytes) -> str:
    """``{runner_id}-{16 secret characters}-o2r`` (LR-044)."""
    return f"{runner_id}-{derive_secret(seed, 'trickle:o2r')[:O2R_SECRET_CHARS]}-o2r"


def secrets_equal(got: str, want: str) -> bool:
    """Constant-time comparison of two secrets (LR-004)."""
    return hmac.compare_digest(
        got.encode("utf-8", "surrogatepass"), want.encode("utf-8", "surrogatepass")
    )
