"""Session tokens: an HMAC-SHA256-signed claim of who may talk to which characters, until when.

    token = base64url(json {"sub": player, "chr": [character ids, or "*"], "exp": unix seconds}) "." base64url(mac)

The server's secret is ``server.secret`` (an environment variable is the place for it), else a random key
kept in ``<data_dir>/secret.key`` (created on first use, mode 0600). `llmasos token` signs with the same one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from llmasos.errors import LLMasOSError


class AuthError(LLMasOSError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Claims:
    player: str
    characters: tuple[str, ...]
    expires: int

    def allows(self, character: str) -> bool:
        return "*" in self.characters or character in self.characters


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    if configured:
        if len(configured) < 16:
            raise LLMasOSError("server.secret must be at least 16 characters")
        return configured.encode()
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


def sign(secret: bytes, player: str, characters: tuple[str, ...], ttl_s: int, now: float | None = None) -> str:
    claims = {"sub": player, "chr": list(characters), "exp": int((now or time.time()) + ttl_s)}
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(secret: bytes, token: str, now: float | None = None) -> Claims:
    """The token's claims; AuthError (401) when it is malformed, forged or expired."""
    try:
        body, mac = token.strip().split(".")
        expected = hmac.new(secret, body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            raise AuthError(401, "invalid_token", "the token's signature is not valid")
        data = json.loads(_unb64(body))
        claims = Claims(str(data["sub"]), tuple(str(c) for c in data["chr"]), int(data["exp"]))
    except AuthError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError(401, "invalid_token", f"the token is malformed: {exc.__class__.__name__}") from None
    if claims.expires < (now or time.time()):
        raise AuthError(401, "token_expired", "the token has expired; ask for a new one")
    return claims


def authorize(secret: bytes, token: str | None, player: str, character: str) -> Claims:
    if not token:
        raise AuthError(401, "auth_required", "this server needs a session token (Authorization: Bearer ...)")
    claims = verify(secret, token)
    if claims.player != player:
        raise AuthError(403, "player_mismatch", "the token was issued to another player")
    if not claims.allows(character):
        raise AuthError(403, "character_not_allowed", f"the token does not allow talking to {character!r}")
    return claims
