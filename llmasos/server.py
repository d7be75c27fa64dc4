"""The HTTP server: the browser client, health, characters, and WebRTC signalling, in one process.

    GET  /             the browser client
    GET  /healthz      503 while the models load (or if loading failed), then 200; JSON with the LLM engine's
                       process: {"llm": {"state", "pid", "restarts", "last_exit", "cpu_variant", ...}}
    GET  /metrics      Prometheus: per-stage turn latency histograms, sessions, errors by kind
    GET  /characters   the characters a client may talk to
    GET  /rooms        the rooms a client may join: {"rooms": [{"id", "name", "characters": [ids]}]}
    GET  /rtc/config   ICE servers for clients
    POST /rtc/offer    {"sdp", "type": "offer", "character", "player"} -> {"sdp", "type": "answer", "session"}
                       or, to join a room: {"sdp", "type": "offer", "room", "player", "name"}
                       -> {"sdp", "type": "answer", "session", "room"}
    DELETE /players/{player}/memories   forget a player everywhere
    POST /generate     {"kind", "prompt", "seed"?, "save"?} -> 202 {"id", "state": "queued", ...}: a content job
    GET  /generate/{id}  {"id", "kind", "state": queued|running|done|failed, "progress": {"tokens", ...},
                       "result" (the object), "report", "saved"; or "error"}

Errors are JSON ``{"error": {"code": ..., "message": ...}}`` with a 4xx/5xx status. Models load once, in a
thread, when the server starts; sessions are refused (503, Retry-After) until they are loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from dialogue.actions import json_schema
from dialogue.manager import DialogueManager
from llmasos.auth import AuthError, authorize, load_secret, sign, verify
from llmasos.content import Generations, NoCharacter, TooManyJobs, library
from llmasos.conversation import Conversation
from llmasos.engine import Engine, load_engine
from llmasos.http_api import ERRORS as _ERRORS
from llmasos.http_api import (
    CharacterOffer,
    ErrorResponse,
    GenerateRequest,
    OfferAnswer,
    OfferRequest,
    RoomOffer,
    TokenAnswer,
    TokenRequest,
    error,
)
from llmasos.ids import PLAYER_ID, unknown_characters
from llmasos.metrics import Metrics
from llmasos.room import Room
from llmasos.settings import Settings
from llmasos.world import LayoutError, layout, vendor_problems
from rtc import IceUnavailableError, PeerOptions, PeerSession, SignalingError
from rtc.peer import IceServer, first_turn_url, turn_urls
from rtc.protocol import ErrorMessage, SessionMessage

log = logging.getLogger(__name__)

WEB = Path(__file__).parent / "web"


@dataclass
class _Session:
    id: str
    peer: PeerSession
    task: asyncio.Task[None]
    player: str
    conversation: Conversation | None = None  # a 1:1 session's (its history can be resumed)


@dataclass(frozen=True)
class _Ended:
    """A 1:1 session that ended: a new offer may resume its conversation within ``limits.resume_window_s``."""

    player: str
    manager: DialogueManager  # its character is the session's
    at: float


@dataclass
class ServerState:
    settings: Settings
    engine: Engine | None = None
    loading_error: str | None = None
    sessions: dict[str, _Session] = field(default_factory=dict)
    rooms: dict[str, Room] = field(default_factory=dict)  # rooms with someone in them, by room id
    ended: dict[str, _Ended] = field(default_factory=dict)  # 1:1 sessions that may be resumed, by session id
    admitting: int = 0  # offers holding a session slot while their peer is answered
    progress: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set once loading has ended, either way
    metrics: Metrics = field(default_factory=Metrics)
    generations: Generations | None = None  # content jobs (made at the first POST /generate)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_required(settings: Settings) -> bool:
    mode = settings.server.auth
    return mode == "required" or (mode == "auto" and not _is_loopback(settings.server.host))


def create_app(
    settings: Settings, loader: Callable[[Settings, Callable[[str], None]], Engine] = load_engine
) -> FastAPI:
    state = ServerState(settings)
    secret = load_secret(settings.server.secret, settings.data_dir) if auth_required(settings) else b""

    def progress(line: str) -> None:  # once, as a log line (it was printed and logged: twice on a terminal)
        state.progress.append(line)
        log.info(line)

    async def load() -> None:
        if not secret and _is_loopback(settings.server.host):
            progress("no authentication: the server listens on loopback only")
        elif not secret:
            progress("WARNING: no authentication on a non-loopback address (server.auth = off)")
        servers = ice_servers(settings)
        turn = first_turn_url(servers)
        if [u for u in turn_urls(servers) if u != turn]:  # aiortc allocates on one; clients get all (/rtc/config)
            progress(f"the server relays through {turn} only; clients are given all TURN URLs")
        try:
            state.engine = await asyncio.to_thread(loader, settings, progress)
            scheme = "https" if settings.server.tls_cert else "http"
            progress(f"ready: open {scheme}://{settings.server.host}:{settings.server.port}/ in a browser")
        except Exception as exc:  # shown by /healthz and the log; the server stays up to say so
            state.loading_error = str(exc)
            log.exception("loading failed")
            print(f"llmasos: error: loading failed: {exc}", flush=True)
        finally:
            state.ready.set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(load())
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            for session in list(state.sessions.values()):
                await session.peer.close()
            tasks = [s.task for s in state.sessions.values()]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if state.generations is not None:
                await state.generations.aclose()
            if state.engine is not None:
                await state.engine.aclose()

    # the API's description is /openapi.json; the interactive /docs page loads its scripts from a CDN, so it
    # is off: this server works offline, and a page that fetches from elsewhere has no place in it
    app = FastAPI(title="LLMasOS", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.llmasos = state
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors())
        return error(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, "http_error", str(exc.detail), dict(exc.headers or {}))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB / "index.html")

    vendor = vendor_problems(WEB / "vendor")
    if vendor:
        log.error("the 3D client's vendored three.js is not as pinned", extra={"problems": "; ".join(vendor)})

    @app.get("/world", include_in_schema=False)
    async def world_page() -> Response:
        """The 3D/WebXR client (three.js, vendored and checked at start: nothing comes from elsewhere)."""
        if vendor:
            text = "The 3D client cannot start: " + "; ".join(vendor) + ". Reinstall the package."
            return Response(text, status_code=500, media_type="text/plain")
        return FileResponse(WEB / "world.html")

    @app.get("/world/layout", responses=_ERRORS)
    async def world_layout(character: str | None = None, room: str | None = None, scene: str | None = None) -> Any:
        """The scene the 3D client draws for a 1:1 session with `character`, a `room`, or a `scene`: named places
        (metres on the floor), props and where each character stands."""
        if state.engine is None:
            return error(503, "loading", "the server is still loading")
        scenes = {sc.id: sc for sc in library(settings).scenes()}
        try:
            return layout(
                state.engine.characters, state.engine.rooms, scenes, character=character, room=room, scene=scene
            )
        except LayoutError as exc:
            return error(404, "not_found", str(exc))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if state.engine is not None:
            llm = state.engine.health()
            body = {"status": "ok", "sessions": len(state.sessions), "rss_mb": _rss_mb(), "llm": llm}
            if llm["state"] == "failed":  # the engine gave up restarting: no reply can be made
                return JSONResponse({**body, "status": "degraded"}, status_code=503)
            return JSONResponse(body)
        if state.loading_error is not None:
            return JSONResponse({"status": "failed", "error": state.loading_error}, status_code=503)
        return JSONResponse({"status": "loading", "progress": state.progress[-1:]}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/characters")
    async def characters() -> dict[str, Any]:
        """Each character and its world actions, with the JSON Schema of each action's arguments (what an
        `action` event's `args` is validated against), so a client can map them to its own assets."""
        if state.engine is None:
            return {"characters": []}
        return {
            "characters": [
                {
                    "id": c.id,
                    "name": c.name,
                    "role": c.role,
                    "greeting": c.greeting,
                    "actions": [
                        {"name": a.name, "description": a.description, "args": json_schema(a)} for a in c.actions
                    ],
                }
                for c in state.engine.characters.values()
            ]
        }

    @app.get("/rooms")
    async def rooms() -> dict[str, Any]:
        if state.engine is None:
            return {"rooms": []}
        return {
            "rooms": [
                {"id": r.id, "name": r.name, "characters": list(r.characters)} for r in state.engine.rooms.values()
            ]
        }

    def own_token(request: Request, player: str, mismatch: str) -> JSONResponse | None:
        """When auth is on, the request must carry ``player``'s own token (`Authorization: Bearer`)."""
        if not secret:
            return None
        try:
            claims = verify(secret, _bearer(request) or "")
        except AuthError as exc:
            return error(exc.status, exc.code, exc.message)
        return error(403, "player_mismatch", mismatch) if claims.player != player else None

    @app.delete("/players/{player}/memories", responses=_ERRORS)
    async def forget(request: Request, player: str = PathParam(pattern=PLAYER_ID)) -> JSONResponse:
        """Delete everything remembered of a player, with every character (their token, when auth is on)."""
        refused = own_token(request, player, "a player can only forget their own memories")
        if refused is not None:
            return refused
        engine = state.engine
        if engine is None:
            return error(503, "loading", "the models are still loading; try again shortly", {"Retry-After": "5"})
        if engine.reflector is not None:
            engine.reflector.forget(player)  # summaries in flight for this player are dropped too
        try:
            deleted = await asyncio.wait_for(engine.memory.forget(player), 10.0)
        except TimeoutError:  # the store is down: the delete is queued and goes on by itself
            return JSONResponse({"player": player, "status": "accepted"}, status_code=202)
        log.info("player forgotten", extra={"deleted": deleted})
        return JSONResponse({"player": player, "deleted": deleted})

    @app.delete("/sessions/{session_id}", responses=_ERRORS)
    async def close_session(request: Request, session_id: str = PathParam(pattern=r"^[0-9a-f]{32}$")) -> JSONResponse:
        """End a session (its player's token, when auth is on): every reply is finalised (what was heard is
        kept), then the peer is closed. A 1:1 session can be resumed afterwards (``resume`` in the offer)."""
        session = state.sessions.get(session_id)
        if session is None:
            return error(404, "unknown_session", f"no session {session_id} is open")
        refused = own_token(request, session.player, "a player can only close their own sessions")
        if refused is not None:
            return refused
        await session.peer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(session.task), 10.0)
        return JSONResponse({"session": session_id, "status": "closed"})

    @app.post("/tokens", response_model=TokenAnswer, responses=_ERRORS)
    async def mint(body: TokenRequest, request: Request) -> TokenAnswer | JSONResponse:
        """A session token for ``body.player`` (what `llmasos token` prints), for a game backend that presents
        the operator key (`Authorization: Bearer KEY`, `server.operator_key`). Its players never see the key."""
        key = settings.server.operator_key
        if not key:
            return error(404, "tokens_disabled", "minting tokens over HTTP is off: set server.operator_key")
        if not _operator(request, key):
            state.metrics.error("invalid_operator_key")
            return error(401, "invalid_operator_key", "this needs the operator key (Authorization: Bearer ...)")
        engine = state.engine
        if engine is None:
            return error(503, "loading", "the models are still loading; try again shortly", {"Retry-After": "5"})
        unknown = unknown_characters(body.characters, engine.characters, any_ok=True)
        if unknown:
            return error(404, "unknown_character", unknown)
        signing = secret or load_secret(settings.server.secret, settings.data_dir)
        token = sign(signing, body.player, tuple(body.characters), body.ttl_s)
        log.info("token minted", extra={"player": body.player, "ttl_s": body.ttl_s})
        return TokenAnswer(token=token, player=body.player, expires_in_s=body.ttl_s)

    @app.post("/generate", status_code=202, responses={**_ERRORS, 429: {"model": ErrorResponse}})
    async def start_generation(body: GenerateRequest, request: Request) -> JSONResponse:
        """Start generating a character, quest, scene or story (background work: it yields the model to every
        conversation turn). When auth is on it needs a player's token or the operator key."""
        refused = any_token(request)
        if refused is not None:
            return refused
        engine = state.engine
        if engine is None:
            return error(503, "loading", "the models are still loading; try again shortly", {"Retry-After": "5"})
        if state.generations is None:
            state.generations = Generations(
                engine.backend, engine.activity, lambda: engine.characters, settings, lambda _: engine.reload_content()
            )
        try:
            job = state.generations.start(body.kind, body.prompt, body.seed, body.save)
        except NoCharacter as exc:
            return error(409, "no_character", str(exc))
        except TooManyJobs as exc:
            return error(429, "too_many_jobs", str(exc), {"Retry-After": "10"})
        except ValueError as exc:
            return error(422, "invalid_request", str(exc))
        log.info("generation queued", extra={"job": job.id, "kind": job.kind})
        return JSONResponse(job.view(state.generations.options.max_tokens), status_code=202)

    @app.get("/generate/{job_id}", responses=_ERRORS)
    async def generation(request: Request, job_id: str = PathParam(pattern=r"^[0-9a-f]{32}$")) -> JSONResponse:
        """A generation job's state, progress (tokens of the draft so far) and, once done, its result."""
        refused = any_token(request)
        if refused is not None:
            return refused
        job = state.generations.get(job_id) if state.generations is not None else None
        if job is None or state.generations is None:
            return error(404, "unknown_job", f"no generation job {job_id}")
        return JSONResponse(job.view(state.generations.options.max_tokens))

    def any_token(request: Request) -> JSONResponse | None:
        """When auth is on: a valid player token, or the operator key."""
        if not secret:
            return None
        if _operator(request, settings.server.operator_key):
            return None
        try:
            verify(secret, _bearer(request) or "")
        except AuthError as exc:
            return error(exc.status, exc.code, exc.message)
        return None

    @app.get("/rtc/config")
    async def rtc_config() -> dict[str, Any]:
        config: dict[str, Any] = {"iceServers": [s.browser() for s in ice_servers(settings)]}
        if settings.server.ice_transport_policy == "relay":
            config["iceTransportPolicy"] = "relay"
        return config

    @app.post(
        "/rtc/offer",
        response_model=OfferAnswer,
        responses={**_ERRORS, 500: {"model": ErrorResponse}},
    )
    async def offer(body: OfferRequest, request: Request) -> OfferAnswer | JSONResponse:
        origin = request.headers.get("origin")
        if origin is not None and not _origin_allowed(origin, request, settings):
            state.metrics.error("bad_origin")
            return error(403, "bad_origin", f"origin {origin!r} may not open sessions on this server")
        if secret:
            bearer = _bearer(request)
            token = bearer if bearer is not None else body.token
            try:
                targets = [body.character] if isinstance(body, CharacterOffer) else _room_characters(state, body.room)
                for target in targets:
                    authorize(secret, token, body.player, target)
            except AuthError as exc:
                state.metrics.error(exc.code)
                return error(exc.status, exc.code, exc.message)
        engine = state.engine
        if engine is None:
            return error(503, "loading", "the models are still loading; try again shortly", {"Retry-After": "5"})
        taken = len(state.sessions) + state.admitting
        if taken >= settings.limits.max_sessions:
            state.metrics.error("server_full")
            return error(
                503,
                "server_full",
                f"{taken} sessions are open or opening, the most this server takes",
                {"Retry-After": "10"},
            )
        state.admitting += 1  # the slot is this offer's from here, across every await, until it is a session or fails
        try:
            return await admit(engine, body)
        finally:
            state.admitting -= 1

    async def admit(engine: Engine, body: OfferRequest) -> OfferAnswer | JSONResponse:
        """Answer the offer and start its session (a slot is reserved for it)."""
        if isinstance(body, RoomOffer):
            return await admit_to_room(engine, body)
        character = engine.character(body.character)
        if character is None:
            return error(404, "unknown_character", unknown_characters([body.character], engine.characters) or "")
        resumed = None
        if body.resume is not None:
            resumed = _resumable(state, body.resume, body.player, character.id)
            if resumed is None:
                window = settings.limits.resume_window_s
                return error(
                    404,
                    "unknown_session",
                    f"session {body.resume} cannot be resumed: it is not a session of {body.player!r} with "
                    f"{character.id!r} that ended in the last {window:.0f} s",
                )
        limits = settings.limits
        options = peer_options()
        try:
            peer = await PeerSession.accept(body.sdp, options)
        except SignalingError as exc:
            state.metrics.error(exc.code)
            return error(_signaling_status(exc), exc.code, exc.message)
        assert peer.answer is not None
        session_id = uuid.uuid4().hex
        try:
            conversation = engine.conversation(
                peer, character, body.player, state.metrics, greet=body.greet and resumed is None, manager=resumed
            )
            peer.send(SessionMessage(session=session_id, character=character.id, player=body.player))
        except Exception:
            log.exception("session could not start", extra={"character": character.id})
            await peer.close()  # never a peer without its session
            state.metrics.error("session_failed")
            return error(500, "session_failed", "the session could not start; see the server log")
        task = asyncio.create_task(
            _run(state, session_id, peer, conversation.run(), limits.max_session_s), name=f"session-{session_id}"
        )
        state.sessions[session_id] = _Session(session_id, peer, task, body.player, conversation)
        state.metrics.sessions.inc()
        state.metrics.sessions_total.inc()
        log.info("session started", extra={"session": session_id, "character": character.id, "resumed": body.resume})
        return OfferAnswer(sdp=peer.answer.sdp, session=session_id, resumed=resumed is not None)

    def peer_options() -> PeerOptions:
        limits = settings.limits
        return PeerOptions(
            ice_servers=ice_servers(settings),
            ice_transport_policy=settings.server.ice_transport_policy,
            allow_loopback=_allow_loopback(settings),
            max_sdp_bytes=limits.max_sdp_bytes,
            max_message_bytes=limits.max_message_bytes,
            messages_per_s=limits.messages_per_s,
        )

    async def admit_to_room(engine: Engine, body: RoomOffer) -> OfferAnswer | JSONResponse:
        """Join ``body.room`` (opened at its first participant): the peer hears the room's mix."""
        room_id = body.room
        spec = engine.rooms.get(room_id)
        if spec is None:
            known = ", ".join(engine.rooms) or "none"
            return error(404, "unknown_room", f"no room {room_id!r} (known: {known})")
        room = state.rooms.get(room_id)
        if room is not None and body.player in room.participants:
            return error(409, "already_joined", f"player {body.player!r} is already in room {room_id!r}")
        if room is None:
            try:
                room = engine.room(spec, state.metrics)
            except Exception:
                log.exception("room could not open", extra={"room": room_id})
                state.metrics.error("session_failed")
                return error(500, "session_failed", "the room could not open; see the server log")
            state.rooms[room_id] = room
        assert room.mixer is not None
        ear = room.mixer.add_participant(body.player)
        try:
            peer = await PeerSession.accept(body.sdp, peer_options(), outbound=ear)
        except SignalingError as exc:
            room.mixer.remove_participant(body.player)
            _close_if_empty(state, room_id, room)
            state.metrics.error(exc.code)
            return error(_signaling_status(exc), exc.code, exc.message)
        assert peer.answer is not None
        session_id = uuid.uuid4().hex
        peer.send(SessionMessage(session=session_id, player=body.player, room=room_id))
        name = body.name or body.player
        joined = room.join(body.player, name, peer, greet=body.greet)
        task = asyncio.create_task(
            _run(
                state,
                session_id,
                peer,
                joined,
                settings.limits.max_session_s,
                lambda: _close_if_empty(state, room_id, room),
            ),
            name=f"session-{session_id}",
        )
        state.sessions[session_id] = _Session(session_id, peer, task, body.player)
        state.metrics.sessions.inc()
        state.metrics.sessions_total.inc()
        log.info("session started", extra={"session": session_id, "room": room_id})
        return OfferAnswer(sdp=peer.answer.sdp, session=session_id, room=room_id)

    return app


def _bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None when there is none."""
    header = request.headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else None


def _operator(request: Request, key: str | None) -> bool:
    """The request carries the operator key (``Authorization: Bearer KEY``); never when no key is set."""
    return bool(key) and hmac.compare_digest((_bearer(request) or "").encode(), (key or "").encode())


def _signaling_status(exc: SignalingError) -> int:
    """400 for an offer that cannot be answered; 503 when the server's own ICE setup fails it."""
    return 503 if isinstance(exc, IceUnavailableError) else 400


def ice_servers(settings: Settings) -> tuple[IceServer, ...]:
    """The configured ICE servers, for aiortc and for clients (`GET /rtc/config`)."""
    return tuple(
        IceServer((s,)) if isinstance(s, str) else IceServer(s.urls, s.username, s.credential)
        for s in settings.server.ice_servers
    )


def _resumable(state: ServerState, session_id: str, player: str, character: str) -> DialogueManager | None:
    """The conversation of an ended 1:1 session of ``player`` with ``character``, if it ended recently enough."""
    window = state.settings.limits.resume_window_s
    now = time.monotonic()
    for old in [k for k, e in state.ended.items() if now - e.at > window]:
        del state.ended[old]
    ended = state.ended.get(session_id)
    if ended is None or (ended.player, ended.manager.character.id) != (player, character):
        return None
    del state.ended[session_id]  # once
    return ended.manager


def _room_characters(state: ServerState, room_id: str) -> list[str]:
    spec = state.engine.rooms.get(room_id) if state.engine is not None else None
    return list(spec.characters) if spec is not None else []


def _close_if_empty(state: ServerState, room_id: str, room: Room) -> None:
    if not room.participants and state.rooms.get(room_id) is room:
        del state.rooms[room_id]


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _origin_allowed(origin: str, request: Request, settings: Settings) -> bool:
    """The server's own origin, and those configured in server.allowed_origins."""
    if origin in settings.server.allowed_origins:
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _allow_loopback(settings: Settings) -> bool:
    configured = settings.server.allow_loopback_candidates
    return _is_loopback(settings.server.host) if configured is None else configured


async def _run(
    state: ServerState,
    session_id: str,
    peer: PeerSession,
    session: Coroutine[Any, Any, None],
    max_s: float,
    ended: Callable[[], None] = lambda: None,
) -> None:
    """One session (a 1:1 conversation, or a place in a room) until it ends, at most ``max_s``."""
    try:
        await asyncio.wait_for(session, max_s)
    except TimeoutError:
        peer.send(ErrorMessage(code="session_too_long", message=f"sessions end after {max_s:.0f} s; reconnect"))
        state.metrics.error("session_too_long")
    except Exception:
        log.exception("session failed", extra={"session": session_id})
    finally:
        await peer.close()
        ended()
        gone = state.sessions.pop(session_id, None)
        if gone is not None:
            state.metrics.sessions.dec()
            if gone.conversation is not None:  # resumable for a while (``resume`` in a new offer)
                manager = gone.conversation.manager
                state.ended[session_id] = _Ended(gone.player, manager, time.monotonic())
                while len(state.ended) > 1000:
                    del state.ended[next(iter(state.ended))]
        log.info("session ended", extra={"session": session_id})
