"""The character's own voice coming back through the player's microphone: found, and taken out.

A headset puts its microphone centimetres from its speakers, and native, Firefox and many headset clients have
no echo cancellation. What comes back is the audio the server itself just sent, delayed (the network, the
client's playout buffer, the room) and quieter. The server knows that audio sample by sample, so it does not
have to guess: the gate holds what was sent to this player (the *reference*) and, for each block of their
microphone, finds the delay at which the reference explains it, and removes it.

    reference (what the player was sent) ──► ring, 16 kHz
    microphone block ──► delay (cross-correlation against the ring, re-estimated every ``track_ms``)
                     ──► the reference at that delay, scaled by least squares, subtracted
                     ──► echo only (what is left is a small part of the block): silence
                         the player speaking too (much is left): what is left, their voice

Both streams are continuous and paced in real time (the outbound track sends silence when the character is
quiet; a microphone sends frames all the time), so the delay is an offset between two sample counters that
stays put while nothing is dropped; it is searched again every ``track_ms`` within ``max_delay_ms``.

What it models is one delayed, scaled copy of what was sent: a client that plays its output into its own
microphone, a headset whose speakers leak into its microphone. A room's reverberation is a filter, not a copy;
the part of it the copy does not explain stays, so this is a double-talk gate, not a full acoustic echo
canceller. Synchronous and cheap (one FFT cross-correlation per ``track_ms``, a dot product per block).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from voice.types import ASR_RATE, Samples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EchoOptions:
    max_delay_ms: int = 600  # the longest way back: network both ways, the client's playout buffer, the room
    # microphone audio compared with the reference to find the delay. Long enough that only an echo is explained
    # by the reference all through it: over 160 ms, one vowel of the player's next to one of the character's (the
    # same voice, the same pitch) was explained as well, and a word of theirs was taken for echo and silenced
    window_ms: int = 480
    track_ms: int = 100  # how often the delay is searched again (every block until one is found)
    jitter_ms: int = 30  # each block is aligned within this much of the delay found
    min_correlation: float = 0.5  # a delay counts when the reference explains at least this much (|ncc|)
    adopt_correlation: float = 0.65  # ... and a new one is taken when the next search finds it this clearly
    echo_residual: float = 0.35  # a block is echo alone when what is left is under this share of its energy
    quiet_rms: float = 1e-3  # a reference quieter than this plays nothing that could come back (~ -60 dBFS)


class EchoGate:
    """One player's gate: ``reference()`` what they were sent, ``filter()`` what their microphone heard (both
    16 kHz mono float32, each in the order it happened). Counts ``echo_blocks`` it silenced."""

    def __init__(self, options: EchoOptions = EchoOptions()) -> None:
        self._o = options
        self._max_delay = options.max_delay_ms * ASR_RATE // 1000
        self._window = options.window_ms * ASR_RATE // 1000
        self._track = options.track_ms * ASR_RATE // 1000
        self._jitter = options.jitter_ms * ASR_RATE // 1000
        keep = self._max_delay + self._window + ASR_RATE  # a second beyond what a search reads
        self._ref = np.zeros(keep, dtype=np.float32)  # the last ``keep`` reference samples, oldest first
        self._ref_total = 0  # reference samples received so far
        self._mic = np.zeros(self._window, dtype=np.float32)  # the last window of microphone audio
        self._mic_total = 0
        self._offset: int | None = None  # mic sample i echoes reference sample i + offset (None: not found)
        self._candidate: int | None = None  # an offset the last search found that no search has confirmed yet
        self._since_search = self._track
        self.echo_blocks = 0
        self.delay_ms: float | None = None  # the delay found last (for logs and tests)
        self._echo_at: int | None = None  # the mic sample count at the end of the last block echo came back in

    def reference(self, samples: Samples) -> None:
        """Audio the player was sent, as it was sent."""
        n = len(samples)
        if n == 0:
            return  # the resampler holds the first samples back
        if n >= len(self._ref):
            self._ref[:] = samples[-len(self._ref) :]
        else:
            self._ref = np.roll(self._ref, -n)
            self._ref[-n:] = samples
        self._ref_total += n

    def filter(self, mic: Samples) -> Samples:
        """The microphone block without the character's voice in it."""
        n = len(mic)
        if n == 0:
            return mic
        self._mic = np.concatenate([self._mic, mic])[-self._window :]
        start = self._mic_total
        self._mic_total += n
        self._since_search += n
        if self._offset is None or self._candidate is not None or self._since_search >= self._track:
            self._since_search = 0
            self._search()
        if self._offset is None:
            return mic
        energy = float(np.dot(mic, mic))
        if energy <= 0.0:
            return mic
        ref = self._aligned(mic, energy, start)
        if ref is None or float(np.sqrt(np.mean(ref * ref))) < self._o.quiet_rms:
            return mic  # nothing was playing that could come back
        self._echo_at = self._mic_total
        gain = float(np.dot(mic, ref) / max(float(np.dot(ref, ref)), 1e-12))
        left = mic - gain * ref
        if float(np.dot(left, left)) / energy < self._o.echo_residual:
            self.echo_blocks += 1
            return np.zeros_like(mic)  # the character's voice alone: nobody spoke
        return left.astype(np.float32)

    def echo_within(self, seconds: float) -> bool:
        """The character's voice was coming back (a delay is held and it was playing) in the last ``seconds``
        of the microphone: what the gate left of it may still sound like speech for a moment."""
        return self._echo_at is not None and self._mic_total - self._echo_at <= seconds * ASR_RATE

    def _aligned(self, mic: Samples, energy: float, start: int) -> Samples | None:
        """The reference that best explains ``mic`` within ``jitter_ms`` of the delay found: the way back moves
        by a frame now and then (a playout buffer that grew, a burst of packets), and a block compared with the
        reference a frame off is not explained by it. The delay follows the block's best alignment."""
        assert self._offset is not None
        n, jitter = len(mic), self._jitter
        span = self._ref_span(start + self._offset - jitter, n + 2 * jitter)
        if span is None:
            return self._ref_span(start + self._offset, n)
        corr = np.correlate(span, mic, mode="valid")  # corr[k]: mic against span[k : k + n]
        ncc, _ = _normalised(corr, span.astype(np.float64), n, energy)
        ncc = np.abs(ncc)
        best = int(np.argmax(ncc))
        if ncc[best] >= self._o.min_correlation:
            self._offset += best - jitter
            return span[best : best + n]
        return span[jitter : jitter + n]

    def _ref_span(self, first: int, n: int) -> Samples | None:
        """Reference samples ``first`` .. ``first + n`` (counted from the first one received), if still held."""
        held_from = self._ref_total - len(self._ref)
        if first < held_from or first + n > self._ref_total:
            return None
        i = first - held_from
        return self._ref[i : i + n]

    def _search(self) -> None:
        """Find the delay at which the reference explains the last window of the microphone: it came back at
        most ``max_delay`` after it was sent, so it is in the last window + max_delay of the reference."""
        mic = self._mic  # before the first window's worth, the silence the gate started from
        mic_energy = float(np.dot(mic, mic))
        if np.sqrt(mic_energy / len(mic)) < self._o.quiet_rms:
            return  # a silent microphone says nothing about the delay
        span = self._ref[-(self._window + self._max_delay) :].astype(np.float64)
        if np.sqrt(float(np.dot(span, span)) / len(span)) < self._o.quiet_rms:
            return  # nothing was sent that could be coming back (the player speaks to a quiet character)
        base = self._ref_total - len(span)  # the reference sample span[0] is
        size = 1 << int(np.ceil(np.log2(len(span) + len(mic))))
        corr = np.fft.irfft(np.fft.rfft(span, size) * np.conj(np.fft.rfft(mic, size)), size)
        corr = corr[: len(span) - len(mic) + 1]  # corr[k]: the window against span[k : k + window]
        ncc, local = _normalised(corr, span, len(mic), mic_energy)
        ncc[local < self._o.quiet_rms * np.sqrt(len(mic))] = 0.0  # a silent stretch explains nothing
        best = int(np.argmax(np.abs(ncc)))
        if abs(float(ncc[best])) < self._o.min_correlation:
            self._candidate = None  # the microphone is not (only) the reference: keep the delay found before
            return
        self._found(base + best - (self._mic_total - self._window), abs(float(ncc[best])))

    def _delay_ms(self, offset: int) -> float:
        return round((self._ref_total - self._mic_total - offset) * 1000 / ASR_RATE, 1)

    def _found(self, offset: int, ncc: float) -> None:
        """A search explained the microphone by the reference at ``offset`` (by ``ncc``). The delay held is
        followed at once. A new one is taken when the next search (the next block) finds it again, at least
        ``adopt_correlation``: a real echo goes on being explained at its delay, better as more of it fills the
        window. The player's words against the character's, in a voice like it, were explained once or twice,
        barely (0.51, then 0.55 on LJ Speech), and not after."""
        close = self._jitter
        held = self._offset is not None and abs(offset - self._offset) <= close
        again = self._candidate is not None and abs(offset - self._candidate) <= close
        if held or (again and ncc >= self._o.adopt_correlation):
            if not held:
                log.debug("echo delay found", extra={"delay_ms": self._delay_ms(offset), "ncc": round(ncc, 2)})
            self._offset, self._candidate = offset, None
            self.delay_ms = self._delay_ms(offset)
        else:
            self._candidate = offset


def _normalised(corr: np.ndarray, span: np.ndarray, n: int, energy: float) -> tuple[np.ndarray, np.ndarray]:
    """``corr[k]`` (a block of ``n`` samples of energy ``energy`` against ``span[k : k + n]``) as normalised
    cross-correlation, and each stretch's own root energy (``local``)."""
    power = np.concatenate([[0.0], np.cumsum(span * span)])
    local = np.sqrt(np.maximum(power[n:] - power[:-n], 1e-12))
    return corr / (local * np.sqrt(max(energy, 1e-12))), local
