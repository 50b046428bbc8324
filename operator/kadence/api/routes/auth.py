"""Bearer tokens: minted by master, stored only as hashes."""

from __future__ import annotations

from fastapi import APIRouter, status

from kadence.api.deps import CoreDep, CurrentUser
from kadence.api.routes import error_responses
from kadence.api.schemas import TokenIn, TokenOut

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post(
    "/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenOut,
    responses=error_responses(400, 403), summary="Mint a token for a user (master only)",
)
def create_token(body: TokenIn, user: CurrentUser, core: CoreDep) -> TokenOut:
    token = core.create_token(user, body.user_id, body.role.value, body.description)
    return TokenOut(token=token, user_id=body.user_id, role=body.role)
