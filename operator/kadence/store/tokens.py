"""API tokens: only a SHA-256 hash of each token is stored."""

from __future__ import annotations

import hashlib

from kadence.domain.models import Role, UserContext
from kadence.store.db import Connection


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def insert_token(conn: Connection, token: str, user_id: int, role: Role, description: str = "") -> int:
    row = conn.execute(
        "INSERT INTO api_tokens (token_hash, user_id, role, description) VALUES (%s, %s, %s, %s) RETURNING id",
        (hash_token(token), user_id, role.value, description),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def authenticate(conn: Connection, token: str) -> UserContext | None:
    """The user a token belongs to, or None; works without a user context (SECURITY DEFINER)."""
    row = conn.execute("SELECT user_id, role FROM kadence_authenticate(%s)", (hash_token(token),)).fetchone()
    return UserContext(user_id=row["user_id"], role=Role(row["role"])) if row else None
