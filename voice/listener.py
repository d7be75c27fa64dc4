"""The listening stage: audio frames in; speech events, utterances and transcripts out.

    frames ─► 16 kHz mono ─► VAD + endpointer (in a thread) ─► SpeechStarted / SpeechPaused / Utterance
                                                    growing utterance ─► partial Transcript (bounded rate)
                                                    pause ─► speculative final decode
                                                    Utterance ─► final Transcript (in utterance order)

Partials re-decode the growing utterance at most once per ``partial_interval_s`` of new audio and never more
than one at a time; the utterance's end cancels a pending partial.

Speculative finals: once speech has paused for ``speculate_after_s`` (a little trailing audio matters to
Whisper), the final decode of the utterance so far starts. When it is done and the pause still holds, it is
announced as a tentative Transcript (``final=False, tentative=True``), so a reply can be prepared while the
endpointing silence is still being timed. If the utterance then ends on that same pause (no speech in
between), its final transcript is that decode, so the rest of the silence and the decoding overlap instead of
adding up. Speech after the pause discards it (the endpointer says SpeechResumed).

Finals are decoded concurrently with the input and delivered in order. Time is audio time, so the behaviour
does not depend on the wall clock.

A decode that fails is an event, not the end of listening: ``DecodeFailed`` takes the place of the final
transcript (in utterance order), or reports the first failed partial of an utterance (its other partials are
skipped; its final is still decoded). Anything else that fails (the frames, the VAD) ends ``run`` with that
exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

from voice.audio import InboundConverter
from voice.endpoint import Endpointer
from voice.types import (
    ASR,
    ASR_RATE,
    AudioFrame,
    EndpointEvent,
    Samples,
    SpeechPaused,
    SpeechResumed,
    Transcript,
    Utterance,
)


@dataclass(frozen=True, eq=False)
class DecodeFailed:
    """The ASR raised on utterance ``utterance``: its final transcript (``final``; none will come), or a
    partial (the final is still to come)."""

    utterance: int
    final: bool
    error: Exception


ListenEvent = EndpointEvent | Transcript | DecodeFailed


@dataclass(frozen=True)
class ListenerOptions:
    partials: bool = True
    partial_interval_s: float = 0.6
    min_partial_s: float = 0.5  # no partial before this much audio
    speculative: bool = True  # start the final decode when speech pauses
    speculate_after_s: float = 0.1  # ... this long (keep it below the endpointer's min_silence)


class _End:
    pass


_Out = asyncio.Queue[ListenEvent | BaseException | _End]


class Listener:
    """One session's listening state. ``run`` consumes frames and yields events until the frames end."""

    def __init__(self, endpointer: Endpointer, asr: ASR, options: ListenerOptions = ListenerOptions()) -> None:
        self._endpointer = endpointer
        self._asr = asr
        self._options = options
        self._converter = InboundConverter(ASR_RATE)

    async def run(self, frames: AsyncIterator[AudioFrame]) -> AsyncIterator[ListenEvent]:
        out: _Out = asyncio.Queue()
        reader = asyncio.create_task(self._read(frames, out))
        try:
            while not isinstance(item := await out.get(), _End):
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def _process(self, frame: AudioFrame | None) -> list[EndpointEvent]:
        if frame is None:
            return self._endpointer.flush()
        return self._endpointer.push(self._converter.convert(frame))

    async def _read(self, frames: AsyncIterator[AudioFrame], out: _Out) -> None:
        state = _State()
        try:
            async for frame in frames:
                events = await asyncio.to_thread(self._process, frame)
                self._dispatch(events, state, out)
                self._maybe_speculate(state, out)
                self._maybe_partial(state, out)
            self._dispatch(await asyncio.to_thread(self._process, None), state, out)
            if state.last_final is not None:
                await state.last_final
            out.put_nowait(_End())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            out.put_nowait(exc)
        finally:
            state.cancel()

    def _dispatch(self, events: list[EndpointEvent], state: _State, out: _Out) -> None:
        for ev in events:
            out.put_nowait(ev)
            if isinstance(ev, SpeechPaused | SpeechResumed):
                state.drop_speculation()  # speech resumed since any earlier guess
            elif isinstance(ev, Utterance):
                state.cancel_partial()
                decode = state.take_speculation(ev)
                if decode is None:
                    decode = asyncio.ensure_future(self._asr.transcribe(ev.audio, final=True))
                state.last_final = asyncio.create_task(self._final(ev, decode, state.last_final, out))
                state.track(state.last_final)

    def _maybe_speculate(self, state: _State, out: _Out) -> None:
        """One speculative final per pause, once the pause is ``speculate_after_s`` long."""
        ep = self._endpointer
        if not ep.paused:
            state.speculated_pause = False
            return
        if not self._options.speculative or state.speculated_pause or not ep.in_speech:
            return
        if ep.silence_s < self._options.speculate_after_s:
            return
        state.speculated_pause = True
        state.cancel_partial()
        state.drop_speculation()
        audio = ep.current_audio()
        if len(audio):
            decode = asyncio.ensure_future(self._asr.transcribe(audio, final=True))
            index = self._endpointer.utterance_index
            state.speculation, state.speculation_index = decode, index
            decode.add_done_callback(lambda fut: self._announce(fut, index, state, out))

    @staticmethod
    def _announce(decode: asyncio.Future[Transcript], index: int, state: _State, out: _Out) -> None:
        """A speculative decode finished: tell, if it still stands for the open utterance's pause."""
        if decode is not state.speculation or decode.cancelled() or decode.exception() is not None:
            return  # taken by its utterance's final, dropped, or failed (the final decode reports failures)
        if state.last_final is not None and not state.last_final.done():
            return  # an earlier utterance's final is still to come: never announce out of order
        transcript = decode.result()
        if transcript.text.strip():
            out.put_nowait(dataclasses.replace(transcript, final=False, tentative=True, utterance=index))

    def _maybe_partial(self, state: _State, out: _Out) -> None:
        opts = self._options
        if not opts.partials or not self._endpointer.in_speech or self._endpointer.paused:
            return  # partials only while the user is actually speaking
        if state.partial is not None and not state.partial.done():
            return
        if state.speculation is not None and not state.speculation.done():
            return  # the worker is busy with the speculative final
        index = self._endpointer.utterance_index
        if state.partial_failed == index:
            return  # one failed partial per utterance is reported; the rest of its partials are skipped
        audio = self._endpointer.current_audio()
        if len(audio) < opts.min_partial_s * ASR_RATE:
            return
        if len(audio) - state.partial_len < opts.partial_interval_s * ASR_RATE:
            return
        state.partial_len = len(audio)
        state.partial = asyncio.create_task(self._partial(audio, index, state, out))

    async def _partial(self, audio: Samples, index: int, state: _State, out: _Out) -> None:
        try:
            transcript = await self._asr.transcribe(audio, final=False)
        except Exception as exc:
            state.partial_failed = index
            out.put_nowait(DecodeFailed(index, final=False, error=exc))
            return
        if transcript.text:
            out.put_nowait(dataclasses.replace(transcript, utterance=index))

    async def _final(
        self,
        utterance: Utterance,
        decode: asyncio.Future[Transcript],
        previous: asyncio.Task[None] | None,
        out: _Out,
    ) -> None:
        event: ListenEvent
        try:
            event = dataclasses.replace(await decode, utterance=utterance.index)
        except Exception as exc:
            event = DecodeFailed(utterance.index, final=True, error=exc)
        if previous is not None:
            await previous
        out.put_nowait(event)


class _State:
    """The reader's bookkeeping: the partial in flight, the speculative final, the chain of finals."""

    def __init__(self) -> None:
        self.partial: asyncio.Task[None] | None = None
        self.partial_len = 0
        self.partial_failed = -1  # the utterance whose partial failed
        self.speculation: asyncio.Future[Transcript] | None = None
        self.speculation_index = -1
        self.speculated_pause = False
        self.last_final: asyncio.Task[None] | None = None
        self.finals: set[asyncio.Task[None]] = set()

    def cancel_partial(self) -> None:
        if self.partial is not None:
            self.partial.cancel()
        self.partial, self.partial_len = None, 0

    def drop_speculation(self) -> None:
        if self.speculation is not None:
            self.speculation.cancel()
            if self.speculation.done() and not self.speculation.cancelled():
                self.speculation.exception()  # retrieved: a discarded guess's failure is not an error
        self.speculation = None

    def take_speculation(self, utterance: Utterance) -> asyncio.Future[Transcript] | None:
        """The speculative decode if it stands for ``utterance``: same utterance, ended by silence, and no pause
        began after the guess (any speech after it would have ended in a new pause, which drops the guess)."""
        decode, index = self.speculation, self.speculation_index
        self.speculation = None
        if decode is not None and utterance.reason == "silence" and index == utterance.index:
            return decode
        if decode is not None:
            self.speculation = decode
            self.drop_speculation()
        return None

    def track(self, task: asyncio.Task[None]) -> None:
        self.finals.add(task)
        task.add_done_callback(self.finals.discard)

    def cancel(self) -> None:
        self.cancel_partial()
        self.drop_speculation()
        for task in list(self.finals):
            task.cancel()
