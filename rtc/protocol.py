"""The data-channel protocol: JSON objects with a `type`, on a channel labelled `events`.

Server to client: session, state, transcript, reply, words, viseme, action, interrupted, metrics, error, pong; in a room
also addressed and room (and `speaker`/`name` on transcripts, `character` on a character's messages).
Client to server: text, interrupt, ping, focus, world (what the game knows now), action_result (how a world
action turned out), played (how far the client has played a reply's audio).

`schemas()` returns the JSON Schema of each direction; docs/protocol/*.schema.json are generated from it
(client authors for Unity, Unreal and WebXR read those files).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from rtc.errors import ProtocolError

CHANNEL_LABEL = "events"
MAX_MESSAGE_BYTES = 16 * 1024
MAX_TEXT_CHARS = 2000
MAX_FACTS = 20  # a `world` message's facts, at most
MAX_FACT_CHARS = 200
MAX_REASON_CHARS = 200
_ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"

JsonScalar = str | int | float | bool | None


def _type_required(schema: dict[str, Any]) -> None:
    """Every message's ``type`` is required in its schema (the server always sends it; a default does not
    make it optional for a client)."""
    required = schema.setdefault("required", [])
    if "type" in schema.get("properties", {}) and "type" not in required:
        required.insert(0, "type")


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_type_required)


# ---- server to client ----------------------------------------------------------------------------------------


class SessionMessage(_Message):
    """Sent once when the data channel opens."""

    type: Literal["session"] = "session"
    session: str
    character: str | None = None  # a 1:1 session's character
    player: str
    room: str | None = None  # a room's id (its characters and participants come in `room` events)


class StateMessage(_Message):
    type: Literal["state"] = "state"
    # paused: the person it answers began to speak; it speaks on ("speaking") if that was only a backchannel
    state: Literal["listening", "thinking", "speaking", "paused"]
    turn: int | None = None
    character: str | None = None  # in a room: whose state
    # paused: where the voice holds, ms into the reply audio. speaking again after it: that place, and how long
    # it held (held_ms): everything of this turn already sent at or after at_ms plays held_ms later
    at_ms: int | None = Field(default=None, ge=0)
    held_ms: int | None = Field(default=None, ge=0)


class TranscriptMessage(_Message):
    """What the server heard; partial while the user speaks, then final."""

    type: Literal["transcript"] = "transcript"
    text: str
    final: bool
    turn: int | None = None
    speaker: str | None = None  # in a room: the player id of who spoke
    name: str | None = None  # ... and their display name


class ReplyMessage(_Message):
    """The character's reply text as it streams: `text` is everything so far, `delta` what is new."""

    type: Literal["reply"] = "reply"
    text: str
    delta: str = ""
    final: bool = False
    turn: int
    character: str | None = None  # in a room: who replies


class ActionMessage(_Message):
    """A world action, released when playback reaches `at_ms` into the reply audio."""

    type: Literal["action"] = "action"
    name: str
    args: dict[str, JsonScalar] = Field(default_factory=dict)
    turn: int
    at_ms: int = Field(ge=0)
    character: str | None = None  # in a room: who acts


class SpokenWord(_Message):
    text: str
    start: int = Field(ge=0)  # where it starts in the reply's text (chars), as `reply.text` has it
    at_ms: int = Field(ge=0)  # when it is heard, ms into the reply's audio (as `action.at_ms`)
    end_ms: int = Field(ge=0)


class WordsMessage(_Message):
    """When each word of the reply is heard, for captions that follow the voice: sent for each stretch of speech
    as its audio is written, up to ~0.2 s before it is played (`at_ms` into the reply audio, which starts when
    `state` says `speaking`). After an `interrupted`, its `heard` says which of them were heard."""

    type: Literal["words"] = "words"
    turn: int
    words: list[SpokenWord]
    character: str | None = None  # in a room: who speaks


VisemeId = Literal["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "IH", "OH", "OU"]


class VisemeMessage(_Message):
    """Mouth shapes for a stretch of the reply's speech, sent with its `words`, ahead of playback: `at_ms` is
    where the stretch starts in the reply audio, each `[offset_ms, id]` a shape's onset after it (ids: the 15
    visemes of OpenXR XR_META_face_tracking_visemes; `sil` closes the mouth). After an `interrupted`, drop the
    turn's visemes not yet due."""

    type: Literal["viseme"] = "viseme"
    turn: int
    at_ms: int = Field(ge=0)
    visemes: list[tuple[int, VisemeId]]
    character: str | None = None  # in a room: who speaks


class InterruptedMessage(_Message):
    """The reply was cut (barge-in or `interrupt`): `heard` is what the user heard and what is remembered."""

    type: Literal["interrupted"] = "interrupted"
    turn: int
    heard: str
    character: str | None = None  # in a room: who was cut


class MetricsMessage(_Message):
    """A turn's timeline, in milliseconds from the end of the user's speech."""

    type: Literal["metrics"] = "metrics"
    turn: int
    timeline_ms: dict[str, float]
    character: str | None = None


class AddressedMessage(_Message):
    """In a room, for every final utterance: whom it was for (``character`` null: nobody) and why."""

    type: Literal["addressed"] = "addressed"
    speaker: str
    character: str | None
    # backchannel: "uh-huh", "yeah" said over a reply to this speaker, which goes on (character: the one speaking)
    reason: Literal["name", "follow_up", "focus", "only_pair", "other_player", "backchannel", "none"]
    turn: int | None = None  # the turn that answers it


class Participant(_Message):
    id: str
    name: str


class RoomMessage(_Message):
    """In a room: someone joined or left; ``participants`` is everyone in it now."""

    type: Literal["room"] = "room"
    event: Literal["joined", "left"]
    participant: str
    participants: list[Participant]
    characters: list[str]


# every code an `error` message can have (docs/protocol.md says what each means; none of them ends the session
# except `session_too_long`, sent as it ends); a test reads the code for the codes it sends
ERROR_CODES = (
    "asr_failed",
    "listen_failed",
    "llm_unavailable",
    "tts_failed",
    "reply_failed",
    "message_failed",
    "bad_audio",
    "session_too_long",
    "bad_message",
    "bad_json",
    "binary_not_supported",
    "invalid_field",
    "message_too_large",
    "rate_limited",
    "unknown_type",
)


class ErrorMessage(_Message):
    """Something the user should know; the session goes on (``session_too_long``: it is ending)."""

    type: Literal["error"] = "error"
    code: str = Field(json_schema_extra={"enum": list(ERROR_CODES)})
    message: str


class PongMessage(_Message):
    type: Literal["pong"] = "pong"
    id: str | int | None = None


ServerMessage = Annotated[
    SessionMessage
    | StateMessage
    | TranscriptMessage
    | ReplyMessage
    | ActionMessage
    | WordsMessage
    | VisemeMessage
    | InterruptedMessage
    | MetricsMessage
    | AddressedMessage
    | RoomMessage
    | ErrorMessage
    | PongMessage,
    Field(discriminator="type"),
]

# ---- client to server ----------------------------------------------------------------------------------------


class TextMessage(_Message):
    """Typed input, answered like speech."""

    type: Literal["text"]
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


class InterruptMessage(_Message):
    """Stop the character's current reply (like barge-in, without speaking)."""

    type: Literal["interrupt"]


class PingMessage(_Message):
    type: Literal["ping"]
    id: str | int | None = None


class FocusMessage(_Message):
    """In a room: whom the player faces or points at (null: nobody); their words go to it when they name nobody."""

    type: Literal["focus"]
    character: str | None = Field(pattern=_ID_PATTERN)


Fact = Annotated[str, Field(min_length=1, max_length=MAX_FACT_CHARS)]


class WorldMessage(_Message):
    """What the game knows right now about this player's world ("It is night.", "The player holds a torch."):
    it replaces the previous set and goes into the prompt of every reply to this player from then on
    (an empty list clears it)."""

    type: Literal["world"]
    facts: Annotated[list[Fact], Field(max_length=MAX_FACTS)]


class ActionResultMessage(_Message):
    """How a world action of turn `turn` turned out in the game. The character hears it: a success goes into
    what it knows; a failure (`ok` false, `reason` says why: "inventory full") is answered, after the reply
    under way if one is."""

    type: Literal["action_result"]
    turn: int = Field(ge=1)
    action: str = Field(pattern=_ID_PATTERN)
    ok: bool
    reason: Annotated[str, Field(max_length=MAX_REASON_CHARS)] | None = None


class PlayedMessage(_Message):
    """How far the client has actually played turn `turn`'s reply audio (`at_ms` into it, on the clock of
    `action.at_ms` and `words`): sent a few times a second while it plays, and when playback stops. When a client
    sends it, what was heard (after a barge-in: the history and memory) and when actions are released follow
    the client's playback instead of the server's encoder, which runs ahead by the network and jitter buffer."""

    type: Literal["played"]
    turn: int = Field(ge=1)
    at_ms: int = Field(ge=0, le=3_600_000)


AnyClientMessage = (
    TextMessage | InterruptMessage | PingMessage | FocusMessage | WorldMessage | ActionResultMessage | PlayedMessage
)
ClientMessage = Annotated[AnyClientMessage, Field(discriminator="type")]

_client_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
_server_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)
CLIENT_TYPES = ("text", "interrupt", "ping", "focus", "world", "action_result", "played")


def parse_client_message(raw: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> AnyClientMessage:
    """Parse one message from a client. Raises ProtocolError with a code the client can act on."""
    if isinstance(raw, bytes | bytearray | memoryview):
        raise ProtocolError("binary messages are not supported; send JSON text", code="binary_not_supported")
    if len(raw.encode("utf-8", errors="surrogatepass")) > max_bytes:
        raise ProtocolError(f"message larger than {max_bytes} bytes", code="message_too_large")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"not valid JSON: {exc}", code="bad_json") from None
    if not isinstance(data, dict):
        raise ProtocolError("a message must be a JSON object with a 'type'", code="bad_message")
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(
            f"unknown message type {kind!r}; expected one of {', '.join(CLIENT_TYPES)}", code="unknown_type"
        )
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'message'}: {err['msg']}" for err in exc.errors()
        )
        raise ProtocolError(f"invalid {kind!r} message: {problems}", code="invalid_field") from None


def encode(message: BaseModel) -> str:
    """JSON without the optional fields left empty (an `addressed` event's null character is kept)."""
    if isinstance(message, AddressedMessage):
        return message.model_dump_json(exclude={"turn"} if message.turn is None else None)
    return message.model_dump_json(exclude_none=True)


def parse_server_message(raw: str) -> Any:
    """For clients written in Python (tests, the latency bench)."""
    return _server_adapter.validate_json(raw)


def schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas (draft 2020-12) of each direction, keyed by file stem."""
    out: dict[str, dict[str, Any]] = {}
    for name, adapter, title in (
        ("server-to-client", _server_adapter, "LLMasOS data channel: server to client"),
        ("client-to-server", _client_adapter, "LLMasOS data channel: client to server"),
    ):
        body = adapter.json_schema()
        out[name] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": title,
            "description": (
                f"JSON text messages on the WebRTC data channel labelled '{CHANNEL_LABEL}', each an object with a "
                f"'type'. Client messages are at most {MAX_MESSAGE_BYTES} bytes."
            ),
            **body,
        }
    return out
