"""The voice buffer's stream clock: silence while a voice runs dry between sentences is on the stream, so
where the next sample plays (``next_position``) moves on with it."""

from __future__ import annotations

import numpy as np
import pytest

from rtc.audio import FRAME_SAMPLES, VoiceBuffer

pytestmark = pytest.mark.unit


async def test_the_stream_clock_counts_the_silence_of_a_voice_that_ran_dry() -> None:
    voice = VoiceBuffer(200)
    assert voice.next_position == 0
    await voice.write(np.ones(FRAME_SAMPLES + 100, dtype=np.int16))
    assert voice.next_position == FRAME_SAMPLES + 100  # after what is buffered
    voice.take(FRAME_SAMPLES)
    voice.take(FRAME_SAMPLES)  # 100 samples of voice, then silence: it ran dry
    voice.take(FRAME_SAMPLES)  # a whole frame of silence
    assert voice.next_position == 3 * FRAME_SAMPLES  # the next sentence plays at the next frame
    await voice.write(np.ones(10, dtype=np.int16))
    assert voice.next_position == 3 * FRAME_SAMPLES + 10 and voice.written_samples == FRAME_SAMPLES + 110
    voice.clear()
    assert voice.next_position == 3 * FRAME_SAMPLES
