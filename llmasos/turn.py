"""One reply of the character: recall, think, speak, act. One Turn = one task; barge-in = cancel it.

The Turn streams the dialogue manager's sentences into TTS as they come, writes the speech into the paced
speaker (48 kHz), sends `reply` text as it streams, and releases each world action only when playback
reaches it. Whatever ends it (done, cancelled, failed), ``heard`` is what the player actually heard: the text
up to the last word whose audio was played. Only that goes into history and memory.

A Turn can start *held* (a preemptive reply, prepared while the user's pause may still turn out to be only a
pause): the model and the voice run, but nothing reaches the player (no audio, no message) until
``release()``. A held turn that is cancelled leaves no trace with the player.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from dialogue.types import ReplyAction, ReplyDone, ReplyEvent, ReplySentence
from rtc.protocol import ActionMessage, ReplyMessage, SpokenWord, StateMessage, VisemeId, VisemeMessage, WordsMessage
from voice.audio import Resampler, float_to_s16, s16_to_float
from voice.tts import voiced_range
from voice.types import TTS, TTSChunk
from voice.visemes import timed_visemes

log = logging.getLogger(__name__)

OUT_RATE = 48_000


class Speaker(Protocol):
    """The outbound audio edge (rtc.OutboundAudioTrack implements it)."""

    @property
    def written_samples(self) -> int: ...

    @property
    def played_samples(self) -> int: ...

    @property
    def next_position(self) -> int:
        """Where the next sample written will play on the stream's own clock (silence included)."""
        ...

    @property
    def taken_samples(self) -> int:
        """The stream's own clock: every sample taken for playout, silence included."""
        ...

    async def write(self, pcm: npt.NDArray[np.int16]) -> None: ...

    def clear(self) -> int: ...

    def pause(self) -> None:
        """Hold playout where it is (nothing buffered is lost)."""
        ...

    def resume(self) -> None: ...

    def wait_played(self, sample_index: int) -> asyncio.Future[bool]: ...


Send = Callable[[BaseModel], None]
ReplySource = Callable[[], AsyncIterator[ReplyEvent]]


@dataclass
class Timeline:
    """Monotonic timestamps (time.monotonic seconds) of one turn's stages."""

    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str, at: float | None = None) -> None:
        self.marks.setdefault(stage, time.monotonic() if at is None else at)

    def relative_ms(self, origin: str = "speech_end") -> dict[str, float]:
        base = self.marks.get(origin, min(self.marks.values(), default=0.0))
        return {k: round((v - base) * 1000.0, 1) for k, v in sorted(self.marks.items(), key=lambda kv: kv[1])}


class TurnNumbers:
    """A room's turn numbers, one sequence for all its characters (clients match messages by them), and whose
    each recent one was (an ``action_result`` names a turn)."""

    KEPT = 256  # the owners of this many recent turns are known

    def __init__(self) -> None:
        self.last = 0
        self._owners: dict[int, str] = {}

    def next(self, owner: str) -> int:
        self.last += 1
        self._owners[self.last] = owner
        self._owners.pop(self.last - self.KEPT, None)
        return self.last

    def owner(self, number: int) -> str | None:
        return self._owners.get(number)

    def give_back(self, number: int) -> None:
        """A turn nobody saw gives its number to the next one (only the latest can)."""
        if self.last == number:
            self._owners.pop(number, None)
            self.last -= 1


class Turn:
    """A reply in progress. ``run()`` is its task; cancel the task to interrupt it."""

    def __init__(
        self,
        number: int,
        source: ReplySource,
        tts: TTS,
        speaker: Speaker,
        send: Send,
        timeline: Timeline | None = None,
        *,
        held: bool = False,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.number = number
        self._gate = gate  # awaited before the first sound: the room's floor (one character at a time)
        self._source = source
        self._tts = tts
        self._speaker = speaker
        self._transport_send = send
        self._released = asyncio.Event()
        self._outbox: list[BaseModel] = []  # messages kept back while held
        if not held:
            self._released.set()
        self.timeline = timeline or Timeline()
        self.text = ""  # the spoken reply text so far (what TTS was given)
        self.speaking = False  # audio of this turn has been written to the speaker
        self.finished = False  # its conversation has cleaned up after it
        # where this turn's audio starts in the speaker's samples: set when it runs (after the previous turn of
        # its seat has ended and cleared what it had not played), never when it is made
        self._start_sample = speaker.written_samples
        # heard text: word i is heard once the speaker has played up to _word_ends[i] (absolute samples);
        # the reply text up to _word_chars[i] is then heard
        self._word_ends: list[int] = []
        self._word_chars: list[int] = []
        self._action_tasks: set[asyncio.Task[None]] = set()
        self._pending_actions: list[ReplyAction] = []
        # per word: (reply char_start, ms into the turn's written audio, ms into the reply audio on the stream)
        self._words: list[tuple[int, float, float]] = []
        # The reply audio's clock on the wire counts the silence of a voice that ran dry between sentences: the
        # written audio (heard text, action release) and the stream (every `at_ms` sent) differ by these gaps.
        # Per chunk: (its start on the stream, ms; the gap so far, ms).
        self._stream_start: int | None = None
        self._gaps: list[tuple[float, float]] = []
        # the client's own playback, when it reports it (``report_played``): (ms into the reply audio, loop time)
        self._client: tuple[float, float] | None = None
        self._reported = asyncio.Event()  # set (and replaced) at each report
        # a hold (the seat paused its voice): (where, ms on the reply audio's clock; the stream's clock then).
        # No audio is written while it holds, so what plays after it all moves by the hold's length.
        self._held: tuple[float, int] | None = None
        self._playing = asyncio.Event()
        self._playing.set()
        self._due: list[_Due] = []  # actions waiting to be sent, each with its place on the reply audio's clock

    # ---- held turns --------------------------------------------------------------------------------------------

    @property
    def released(self) -> bool:
        """The player gets this turn (always, unless it started held and was not released yet)."""
        return self._released.is_set()

    def release(self) -> None:
        """Let a held turn reach the player: its kept-back messages go out now, its audio as it comes."""
        if self._released.is_set():
            return
        self._released.set()
        outbox, self._outbox = self._outbox, []
        for message in outbox:
            self._transport_send(message)

    def send(self, message: BaseModel) -> None:
        """Send to the player (kept back while the turn is held)."""
        if self._released.is_set():
            self._transport_send(message)
        else:
            self._outbox.append(message)

    # ---- what was heard ----------------------------------------------------------------------------------------

    def report_played(self, at_ms: int) -> None:
        """The client says it has played ``at_ms`` of this reply's audio (it runs behind the encoder by the
        network and its jitter buffer): from now on its playback is what counts as heard."""
        self._client = (float(at_ms), asyncio.get_running_loop().time())
        reported, self._reported = self._reported, asyncio.Event()
        reported.set()

    def client_ms(self) -> float | None:
        """Where the client's playback is on the reply audio's clock: its last report carried forward at real
        speed since it came (None: it never reported)."""
        if self._client is None:
            return None
        at_ms, at_time = self._client
        return at_ms + (asyncio.get_running_loop().time() - at_time) * 1000.0

    def played_ms(self) -> float:
        """How much of this reply's written audio the player has heard: the client's report (less the stream's
        gaps before it), never past what the encoder took; without reports, what the encoder took."""
        encoder = (self._speaker.played_samples - self._start_sample) * 1000.0 / OUT_RATE
        client = self.client_ms()
        if client is None:
            return encoder
        i = bisect.bisect_right([start for start, _ in self._gaps], client) - 1
        return min(encoder, client - (self._gaps[i][1] if i >= 0 else 0.0))

    def _gap_ms(self) -> float:
        """The stream's silence so far in this reply (ms): where the next sample written will play, less how
        much of the reply was written."""
        if self._stream_start is None:
            return 0.0
        stream = self._speaker.next_position - self._stream_start
        return max(0.0, (stream - (self._speaker.written_samples - self._start_sample)) * 1000.0 / OUT_RATE)

    def hold(self) -> int | None:
        """Its voice holds where it is (the seat paused its speaker): that place on the reply audio's clock (ms;
        None before its first sample). It writes no audio until ``play_on``."""
        if self._stream_start is None or self._held is not None:
            return None
        now = self._speaker.taken_samples
        self._held = (max(0, now - self._stream_start) * 1000.0 / OUT_RATE, now)
        self._playing.clear()
        return int(self._held[0])

    def play_on(self) -> tuple[int, int] | None:
        """It plays on from where it held: (where, how long it held, ms), or None if it did not. What was
        written before the hold and plays after it plays that much later on the stream: its words' places, its
        actions not yet sent and the stream's gaps move with it (the client is told to move what it was sent)."""
        held, self._held = self._held, None
        self._playing.set()
        if held is None:
            return None
        at_ms, taken = float(int(held[0])), held[1]  # the place as the client was told it (whole ms)
        length = (self._speaker.taken_samples - taken) * 1000.0 / OUT_RATE
        before = [g for g in self._gaps if g[0] <= at_ms]
        after = [(start + length, gap + length) for start, gap in self._gaps if start > at_ms]
        self._gaps = [*before, (at_ms + length, (before[-1][1] if before else 0.0) + length), *after]
        self._words = [(c, ms, stream + length if stream >= at_ms else stream) for c, ms, stream in self._words]
        for due in self._due:
            if due.at_ms >= at_ms:
                due.at_ms += length
        return int(at_ms), int(round(length))

    def heard_text(self) -> str:
        """The reply text up to the last word whose audio was fully played."""
        played = self._start_sample + int(self.played_ms() * OUT_RATE / 1000.0)
        i = bisect.bisect_right(self._word_ends, played)
        if i == 0:
            return ""
        return self.text[: self._word_chars[i - 1]].strip()

    # ---- the task ------------------------------------------------------------------------------------------------

    async def run(self) -> str:
        """Speak the reply; returns the full spoken text once it has all been played."""
        self._start_sample = self._speaker.written_samples
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        chunks: asyncio.Queue[TTSChunk | None] = asyncio.Queue()
        # Offsets: the TTS receives each sentence followed by a newline (so it can start at once); map its
        # char offsets back to the reply text with this table of (tts_start, reply_start).
        offsets: list[tuple[int, int]] = []
        producer = asyncio.create_task(self._produce(sentences, offsets), name=f"turn-{self.number}-llm")
        synth = asyncio.create_task(self._synthesize(sentences, chunks), name=f"turn-{self.number}-tts")
        try:
            await self._play(chunks, offsets)
            await producer  # re-raise its failure, if any
            await synth
            for action in self._pending_actions:  # actions after the last word: at the end of the audio
                self._schedule(action, *self._end_of_audio())
            self._pending_actions.clear()
            end = self._speaker.written_samples
            if end > self._start_sample:
                await self._speaker.wait_played(end)
            if self._action_tasks:
                await asyncio.gather(*self._action_tasks, return_exceptions=True)
            self.send(ReplyMessage(text=self.text, final=True, turn=self.number))
            return self.text
        finally:
            for task in (producer, synth, *self._action_tasks):
                task.cancel()
            for task in (producer, synth, *self._action_tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _produce(self, sentences: asyncio.Queue[str | None], offsets: list[tuple[int, int]]) -> None:
        fed = 0
        try:
            async for event in self._source():
                if isinstance(event, ReplySentence):
                    self.timeline.mark("llm_first_sentence")
                    gap = max(0, event.start_char - len(self.text))
                    delta = " " * gap + event.text
                    self.text += delta
                    offsets.append((fed + gap, event.start_char))
                    fed += len(delta) + 1
                    sentences.put_nowait(delta + "\n")
                    self.send(ReplyMessage(text=self.text, delta=delta, turn=self.number))
                elif isinstance(event, ReplyAction):
                    self._pending_actions.append(event)
        finally:
            sentences.put_nowait(None)

    async def _synthesize(self, sentences: asyncio.Queue[str | None], chunks: asyncio.Queue[TTSChunk | None]) -> None:
        async def text() -> AsyncIterator[str]:
            while (piece := await sentences.get()) is not None:
                yield piece

        try:
            async for chunk in self._tts.stream(text()):
                self.timeline.mark("tts_first_audio")
                chunks.put_nowait(chunk)
        finally:
            chunks.put_nowait(None)

    async def _play(self, chunks: asyncio.Queue[TTSChunk | None], offsets: list[tuple[int, int]]) -> None:
        resampler: Resampler | None = None
        while (chunk := await chunks.get()) is not None:
            await self._released.wait()  # a held turn prepares its audio but plays none of it
            if not self.speaking and self._gate is not None:
                await self._gate()  # wait for the floor: nobody mid-utterance, no other character speaking
            await self._playing.wait()  # held: what it writes next plays after the hold
            if resampler is None or resampler.in_rate != chunk.sample_rate:
                resampler = Resampler(chunk.sample_rate, OUT_RATE)
            source, lead_ms = chunk.pcm, 0.0
            if not self.speaking:  # the voice's silent onset would only delay the first sound the player hears
                cut = leading_silence(source, chunk.sample_rate)
                source, lead_ms = source[cut:], cut * 1000.0 / chunk.sample_rate
            pcm = float_to_s16(resampler.process(s16_to_float(source)))
            chunk_start = self._speaker.written_samples
            if self._stream_start is None:  # the reply audio's 0 ms on the stream: its first sample
                self._stream_start = self._speaker.next_position - (chunk_start - self._start_sample)
            chunk_offset_ms = (chunk_start - self._start_sample) * 1000.0 / OUT_RATE - lead_ms
            gap = self._gap_ms()
            self._gaps.append((chunk_offset_ms + lead_ms + gap, gap))
            spoken: list[SpokenWord] = []
            for word in chunk.words:
                start_ms = max(0.0, chunk_offset_ms + word.start_ms - chunk.start_ms)
                end_ms = max(start_ms, chunk_offset_ms + word.end_ms - chunk.start_ms)
                start_char = _to_reply(word.char_start, offsets)
                self._words.append((start_char, start_ms, start_ms + gap))
                self._word_ends.append(self._start_sample + int(end_ms * OUT_RATE / 1000.0))
                self._word_chars.append(_to_reply(word.char_end, offsets))
                spoken.append(
                    SpokenWord(text=word.text, start=start_char, at_ms=int(start_ms + gap), end_ms=int(end_ms + gap))
                )
            if not chunk.words:  # no timings: the chunk's text counts as heard once all of it is played
                self._word_ends.append(chunk_start + len(pcm))
                self._word_chars.append(_to_reply(chunk.char_end, offsets))
            chunk_end_char = _to_reply(chunk.char_end, offsets)
            self._release_actions(upto_char=chunk_end_char)
            if not self.speaking:
                self.speaking = True
                self.send(StateMessage(state="speaking", turn=self.number))
                first = self._speaker.wait_played(chunk_start + 1)
                first.add_done_callback(self._first_audio_played)
            if spoken:  # captions: when each word is heard, ahead of playback
                self.send(WordsMessage(turn=self.number, words=spoken))
            if mouth := _visemes(chunk, chunk_offset_ms + gap):  # and the mouth shapes of its phonemes
                self.send(VisemeMessage(turn=self.number, at_ms=mouth[0], visemes=mouth[1]))
            await self._speaker.write(pcm)
        if resampler is not None:
            tail = resampler.flush()
            if len(tail):
                await self._speaker.write(float_to_s16(tail))

    def _first_audio_played(self, played: asyncio.Future[bool]) -> None:
        if not played.cancelled() and played.result():
            self.timeline.mark("first_audio_sent")

    # ---- world actions -----------------------------------------------------------------------------------------

    def _release_actions(self, upto_char: int) -> None:
        """Schedule the actions that fall inside the speech written so far, at their word's start."""
        keep = []
        for action in self._pending_actions:
            if action.at_char <= upto_char:
                self._schedule(action, *self._at_samples(action.at_char))
            else:
                keep.append(action)
        self._pending_actions = keep

    def _at_samples(self, at_char: int) -> tuple[int, float]:
        """The first word at or after ``at_char``: its sample offset in the turn's written audio, and its ms on
        the reply audio's clock (the end of the audio so far when no word is there)."""
        for char_start, start_ms, stream_ms in self._words:
            if char_start >= at_char:
                return int(start_ms * OUT_RATE / 1000.0), stream_ms
        return self._end_of_audio()

    def _end_of_audio(self) -> tuple[int, float]:
        offset = self._speaker.written_samples - self._start_sample
        return offset, offset * 1000.0 / OUT_RATE + self._gap_ms()

    def _schedule(self, action: ReplyAction, offset_samples: int, stream_ms: float) -> None:
        due = _Due(float(max(0, int(stream_ms))))
        self._due.append(due)
        played = self._speaker.wait_played(self._start_sample + offset_samples + 1)  # its word began to play

        async def release() -> None:
            try:
                if not await played:
                    return
                # a client that reports its playback runs behind the encoder: the action waits for it, until
                # its next report or the time its playback should take to get there, whichever comes first
                deadline = asyncio.get_running_loop().time() + CLIENT_LAG_MAX_MS / 1000.0
                while (client := self.client_ms()) is not None and (ahead := due.at_ms - client) > 0:
                    wait = min(ahead / 1000.0, deadline - asyncio.get_running_loop().time())
                    if wait <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._reported.wait(), wait)
                at_ms = int(due.at_ms)
                self.send(ActionMessage(name=action.name, args=dict(action.args), turn=self.number, at_ms=at_ms))
            finally:
                self._due.remove(due)

        task = asyncio.create_task(release(), name=f"turn-{self.number}-action-{action.name}")
        self._action_tasks.add(task)
        task.add_done_callback(self._action_tasks.discard)


@dataclass
class _Due:
    """An action's place on the reply audio's clock (ms), until it is sent (a hold moves it)."""

    at_ms: float


CLIENT_LAG_MAX_MS = 2000.0  # an action waits at most this long for a reporting client's playback to reach it
ONSET_LEVEL = 300  # int16: about -40 dBFS; below it the voice has not started yet
ONSET_KEEP_MS = 5.0  # kept before the first sound, so it does not start with a click


def leading_silence(pcm: npt.NDArray[np.int16], sample_rate: int) -> int:
    """How many samples of silence ``pcm`` starts with (less a few ms kept before the first sound)."""
    first, _ = voiced_range(pcm, ONSET_LEVEL)  # 0 when all of it is quiet
    return max(0, first - int(ONSET_KEEP_MS * sample_rate / 1000))


def _visemes(chunk: TTSChunk, offset_ms: float) -> tuple[int, list[tuple[int, VisemeId]]] | None:
    """A chunk's visemes as (its start in the reply audio, [(ms after it, id)]): from the voice, else spread over
    its word timings by their letters; None when it has neither."""
    timed = chunk.visemes or timed_visemes(chunk.words)
    if not timed:
        return None
    at = max(0, round(offset_ms))
    shift = offset_ms - chunk.start_ms - at
    return at, [(max(0, round(ms + shift)), cast(VisemeId, v)) for ms, v in timed]


def _to_reply(tts_char: int, offsets: list[tuple[int, int]]) -> int:
    """A char offset in the text given to TTS, as an offset in the reply text."""
    i = bisect.bisect_right([o[0] for o in offsets], tts_char) - 1
    if i < 0:
        return 0
    tts_start, reply_start = offsets[i]
    return reply_start + (tts_char - tts_start)


async def speak_text(text: str) -> AsyncIterator[ReplyEvent]:
    """A fixed reply (the greeting, an apology) as reply events."""
    yield ReplySentence(text=text, start_char=0)
    yield ReplyDone(full_text=text)
