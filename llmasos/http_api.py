"""The HTTP API's bodies: the WebRTC offer and its answer, and the one error shape of every 4xx/5xx answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from llmasos.ids import CHARACTER_ID, PLAYER_ID


class _Offer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(max_length=1024 * 1024)  # the configured limit (limits.max_sdp_bytes) is checked after
    type: Literal["offer"]
    player: str = Field(pattern=PLAYER_ID)
    token: str | None = Field(None, max_length=4096)  # or `Authorization: Bearer ...`
    greet: bool = True  # false: the character does not greet (a client that reconnects, a scene already under way)


class CharacterOffer(_Offer):
    """A 1:1 session with one character; ``resume``: a session of this player with this character that ended
    within ``limits.resume_window_s``, whose conversation goes on (its history; no second greeting)."""

    character: str = Field(pattern=CHARACTER_ID)
    resume: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")


class RoomOffer(_Offer):
    """A place in a room, as ``name`` (the player id when it is not given)."""

    room: str = Field(pattern=CHARACTER_ID)
    name: str | None = Field(None, min_length=1, max_length=40)


OfferRequest = CharacterOffer | RoomOffer


class TokenRequest(BaseModel):
    """A game backend asks for a session token for one of its players (`POST /tokens`, operator key)."""

    model_config = ConfigDict(extra="forbid")

    player: str = Field(pattern=PLAYER_ID)
    characters: list[Annotated[str, Field(pattern=rf"{CHARACTER_ID}|^\*$")]] = Field(min_length=1, max_length=64)
    ttl_s: int = Field(3600, ge=1, le=7 * 86400)


class TokenAnswer(BaseModel):
    token: str
    player: str
    expires_in_s: int


class GenerateRequest(BaseModel):
    """A content generation job (`POST /generate`): what to make, in words; ``save``: written where the server
    finds it, so a new character can be talked to (and a scene's room joined) once the job is done. A seed of
    `false` or a `save` of `0` is refused, not taken for 0 and false."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["character", "quest", "scene", "story"]
    prompt: str = Field(min_length=1, max_length=600, pattern=r"\S")
    seed: int | None = Field(None, ge=0, lt=2**31)  # the same seed and prompt make the same object
    save: StrictBool = True

    @field_validator("seed", mode="before")
    @classmethod
    def _no_bool_seed(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a seed is an integer, not true or false")
        return value


class OfferAnswer(BaseModel):
    sdp: str
    type: Literal["answer"] = "answer"
    session: str
    room: str | None = None
    resumed: bool = False  # the conversation of the session named in ``resume`` goes on


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 422, 503)
}


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
