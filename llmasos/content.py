"""Content the server finds (characters, rooms, quests, scenes, stories) and content it generates.

Generated content is written under ``content_dir`` (default ``data_dir/content``), one JSON file per object,
written to a temporary file and renamed (a crash never leaves half a file)::

    characters/ID.json   loaded beside characters_dir's (an id both hold is an error that names both files)
    quests/ID.json       each attached to its giver: it knows the quest and can `offer_quest` it
    stories/ID.json      each attached to its teller: it knows the story
    scenes/ID.json       what the 3D client shows; a scene with characters gets a room opened on it
    rooms/ID.json        rooms (beside the shipped ones and rooms_dir's)

``Generations`` runs generation jobs for the server: one at a time, as background work on the shared model
(``Activity``: a job starts only while no player is speaking or being answered, and gives the model up when
one starts; it is then tried again from the start, with the same seed, once the sessions are quiet).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from dialogue import Backend, Character, CharacterError, ContentError, scan
from dialogue.errors import BackendError, BackendPreemptedError
from dialogue.generate import Generated, GenerateOptions, GenerationError, generate
from dialogue.kinds import KINDS, Kind, Known, Quest, Scene, Story, attach, load_content
from llmasos.activity import Activity, Yielded
from llmasos.dialogue_factory import characters_dir
from llmasos.settings import Settings

log = logging.getLogger(__name__)

_DIRS: dict[str, str] = {"character": "characters", "quest": "quests", "scene": "scenes", "story": "stories"}


def content_dir(settings: Settings) -> Path:
    return settings.content_dir or settings.data_dir / "content"


@dataclass(frozen=True)
class Library:
    """The generated content files under one directory."""

    root: Path

    def dir(self, kind: Kind | Literal["room"]) -> Path:
        return self.root / ("rooms" if kind == "room" else _DIRS[kind])

    def read(self, kind: Literal["quest", "scene", "story"]) -> tuple[list[BaseModel], list[ContentError]]:
        """Every valid file of ``kind`` (sorted by name), and the errors of the others."""
        found: list[BaseModel] = []
        errors: list[ContentError] = []
        directory = self.dir(kind)
        if not directory.is_dir():
            return found, errors
        for path in sorted(directory.glob("*.json")):
            try:
                found.append(load_content(kind, path))
            except ContentError as exc:
                errors.append(exc)
        return found, errors

    def scenes(self) -> list[Scene]:
        return [s for s in self.read("scene")[0] if isinstance(s, Scene)]

    def known(self, kind: Kind, characters: dict[str, Character]) -> Known:
        """What a new ``kind`` object may refer to, and the ids it must not take."""
        places = sorted({p.name for s in self.scenes() for p in s.places})
        for c in characters.values():
            walk = c.action("walk_to")
            for p in walk.params if walk is not None else ():
                places += [v for v in p.choices if v not in places]
        if kind == "character":
            taken = set(characters)
        else:
            directory = self.dir(kind)
            taken = {p.stem for p in directory.glob("*.json")} if directory.is_dir() else set()
            if kind == "scene":  # a scene with characters gets a room of the same id
                rooms = self.dir("room")
                taken |= {p.stem for p in rooms.glob("*.json")} if rooms.is_dir() else set()
        return Known(
            characters={c.id: c.name for c in characters.values()},
            places=tuple(places),
            taken=frozenset(taken),
        )

    def save(self, generated: Generated) -> list[Path]:
        """Write a generated object where the server finds it; the paths written. A scene with characters
        also gets a room of the same id, opened on it."""
        content = generated.content
        written = [self._write(self.dir(generated.kind) / f"{content['id']}.json", content)]
        if generated.kind == "scene" and content.get("characters"):
            cast = [
                m["character"] if isinstance(m["character"], str) else m["character"]["id"]
                for m in content["characters"]
            ]
            room = {
                "id": content["id"],
                "name": content["name"],
                "characters": cast,
                "scenario": content.get("description", ""),
                "facts": [a["text"] for a in content.get("ambient", [])][:8],
                "scene": content["id"],
            }
            written.append(self._write(self.dir("room") / f"{content['id']}.json", room))
        return written

    @staticmethod
    def _write(path: Path, body: dict[str, Any]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path


def library(settings: Settings) -> Library:
    return Library(content_dir(settings))


def scan_characters(settings: Settings) -> tuple[dict[str, Character], list[ContentError]]:
    """The characters of ``characters_dir`` and the generated ones, each knowing the quests it gives and the
    stories it tells; and the errors of the files that are not valid."""
    lib = library(settings)
    found, errors = scan(characters_dir(settings))
    problems: list[ContentError] = list(errors)
    generated_dir = lib.dir("character")
    if generated_dir.is_dir():
        more, more_errors = scan(generated_dir)
        problems += more_errors
        for cid, character in more.items():
            if cid in found:
                problems.append(
                    CharacterError(character.source, "id", f"id {cid!r} is already used by {found[cid].source}")
                )
            else:
                found[cid] = character
    quest_files, quest_errors = lib.read("quest")
    story_files, story_errors = lib.read("story")
    problems += quest_errors + story_errors
    quests = [q for q in quest_files if isinstance(q, Quest)]
    stories = [s for s in story_files if isinstance(s, Story)]
    for cid, character in found.items():
        found[cid] = attach(character, quests, stories)
    return dict(sorted(found.items())), problems


# ---- generation jobs

JobState = Literal["queued", "running", "done", "failed"]
KEEP_JOBS = 64  # finished jobs kept for GET /generate/{id}
RETRY_PAUSE_S = 1.0  # after a job gave the model up to a conversation


@dataclass
class Job:
    id: str
    kind: Kind
    prompt: str
    seed: int
    save: bool
    state: JobState = "queued"
    tokens: int = 0  # of the attempt in progress
    attempt: int = 0
    yielded: int = 0  # times it gave the model up to a conversation and started again
    error: str | None = None
    files: list[str] = field(default_factory=list)
    generated: Generated | None = None
    created: float = field(default_factory=time.time)
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set when its state or ``yielded`` changes

    def mark(self, state: JobState | None = None, *, yielded: bool = False, error: str | None = None) -> None:
        if state is not None:
            self.state = state
        if yielded:
            self.yielded += 1
            self.tokens = 0
        if error is not None:
            self.error = error
        self.changed.set()

    async def until(self, test: Callable[[Job], bool]) -> None:
        """Until ``test(self)`` holds (it is checked at each change)."""
        while not test(self):
            self.changed.clear()
            await self.changed.wait()

    def view(self, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "seed": self.seed,
            "progress": {
                "tokens": self.tokens,
                "max_tokens": max_tokens,
                "attempt": self.attempt,
                "yielded": self.yielded,
            },
        }
        if self.generated is not None:
            g = self.generated
            body["result"] = g.content
            body["report"] = {
                "attempts": g.attempts,
                "repairs": list(g.repairs),
                "rejected": list(g.rejected),
                "tokens": g.tokens,
                "seconds": g.seconds,
                "seed": g.seed,
            }
            body["saved"] = [Path(f).name for f in self.files]
        if self.error is not None:
            body["error"] = self.error
        return body


class TooManyJobs(Exception):
    pass


class NoCharacter(ValueError):
    """A quest was asked for, and there is no character to give it."""


class Generations:
    """The server's generation jobs: queued, run one at a time in the background, kept a while when done."""

    def __init__(
        self,
        backend: Backend,
        activity: Activity,
        characters: Callable[[], dict[str, Character]],
        settings: Settings,
        on_saved: Callable[[Generated], None],
        options: GenerateOptions | None = None,
    ) -> None:
        self.backend = backend
        self.activity = activity
        self.characters = characters
        self.library = library(settings)
        self.max_jobs = settings.limits.generate_jobs
        self.on_saved = on_saved
        self.options = options or GenerateOptions()
        self.jobs: dict[str, Job] = {}
        self._one = asyncio.Lock()

    def start(self, kind: Kind, prompt: str, seed: int | None = None, save: bool = True) -> Job:
        """A new job; ValueError for a bad request (NoCharacter: a quest, and no character), TooManyJobs when the
        queue is full."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        if not prompt.strip():
            raise ValueError("the prompt is empty: say what to make")
        if kind == "quest" and not self.characters():
            raise NoCharacter("a quest needs a giver, and there is no character")
        if sum(j.state in ("queued", "running") for j in self.jobs.values()) >= self.max_jobs:
            raise TooManyJobs(f"{self.max_jobs} generation jobs are queued or running; try again later")
        job = Job(uuid.uuid4().hex, kind, prompt, random.randrange(2**31) if seed is None else seed, save)
        self.jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job), name=f"generate-{job.id}")
        self._forget_old()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def _run(self, job: Job) -> None:
        async with self._one:
            job.mark("running")
            while True:
                known = self.library.known(job.kind, self.characters())

                def progress(tokens: int, attempt: int) -> None:
                    job.tokens, job.attempt = tokens, attempt

                async def work(known: Known = known) -> Generated:
                    return await generate(
                        self.backend.model,
                        job.kind,
                        job.prompt,
                        known,
                        seed=job.seed,
                        options=self.options,
                        on_progress=progress,
                        constrained=self.backend.structured_output,
                        call_options={"background": True, "idle": True},  # yields to warm-ups too
                    )

                try:
                    generated = await self.activity.run(work)
                except (Yielded, BackendPreemptedError):
                    job.mark(yielded=True)
                    await asyncio.sleep(RETRY_PAUSE_S)
                    continue
                except (ValueError, GenerationError, BackendError) as exc:
                    job.mark("failed", error=str(exc))
                    log.warning("generation failed", extra={"job": job.id, "kind": job.kind, "reason": str(exc)})
                    return
                except Exception as exc:  # a bug: the job fails, the server goes on
                    job.mark("failed", error=f"{type(exc).__name__}: {exc}")
                    log.exception("generation failed", extra={"job": job.id})
                    return
                break
            job.generated = generated
            if job.save:
                try:
                    job.files = [str(p) for p in await asyncio.to_thread(self.library.save, generated)]
                    self.on_saved(generated)
                except OSError as exc:
                    job.mark("failed", error=f"the {job.kind} could not be saved: {exc}")
                    return
            job.mark("done")
            log.info(
                "content generated",
                extra={"job": job.id, "kind": job.kind, "tokens": generated.tokens, "attempts": generated.attempts,
                       "repairs": len(generated.repairs), "seconds": generated.seconds},
            )  # fmt: skip

    def _forget_old(self) -> None:
        done = [j for j in self.jobs.values() if j.state in ("done", "failed")]
        for job in sorted(done, key=lambda j: j.created)[: max(0, len(done) - KEEP_JOBS)]:
            del self.jobs[job.id]

    async def aclose(self) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job.task
