"""Password hashing (argon2id) and JWT issue/verify (HS256)."""

from __future__ import annotations

import time
from typing import TypedDict

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.errors import Unauthenticated

JWT_ALGORITHM = "HS256"
_hasher = PasswordHasher()  # argon2id with the library's current recommended cost
# Checked when an email is unknown, so that a wrong email costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("no such user: the comparison exists only to take the same time")


class Claims(TypedDict):
    sub: str
    email: str
    iat: int
    exp: int


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; `None` (unknown user) still costs one hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_token(*, user_id: str, email: str, secret: str, expires_in_seconds: int) -> str:
    now = int(time.time())
    claims: Claims = {"sub": user_id, "email": email, "iat": now, "exp": now + expires_in_seconds}
    return jwt.encode(dict(claims), secret, algorithm=JWT_ALGORITHM)


def decode_token(token: str, secret: str) -> Claims:
    """Verified claims, or Unauthenticated for a missing, malformed, expired or forged token."""
    try:
        raw = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["sub", "email", "iat", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated("invalid or expired token") from exc
    if not isinstance(raw.get("sub"), str) or not isinstance(raw.get("email"), str):
        raise Unauthenticated("invalid or expired token")
    return Claims(sub=raw["sub"], email=raw["email"], iat=int(raw["iat"]), exp=int(raw["exp"]))


def bearer_token(header_value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if that is what it holds."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
