"""Real aiortc peers in one room, on loopback, through the mixer: each hears the others and the character,
never itself (the harness is `llmasos bench room`'s)."""

from __future__ import annotations

import pytest

from llmasos.bench.room import VOICE_HZ, level, peer_room

pytestmark = pytest.mark.integration

TONES = {"ann": 300.0, "bob": 700.0, "cat": 1500.0}
FRAMES = 100  # 2 s of what each client hears


async def test_everyone_hears_the_others_and_the_character_but_not_themself() -> None:
    async with peer_room(TONES, FRAMES, voice_s=6.0) as room:
        for listener in TONES:
            audio = room.audio(listener, FRAMES)
            levels = {who: level(audio, hz) for who, hz in TONES.items()}
            others = [levels[p] for p in TONES if p != listener]
            assert level(audio, VOICE_HZ) > 500 and min(others) > 500, (listener, levels)
            assert levels[listener] < min(others) / 20, (listener, levels)  # mix-minus: not their own voice
        assert room.mixer.voices["character"].played_samples > 48000  # played as it is mixed
        assert len(room.mixer.relay_delays_s) > len(TONES) * FRAMES  # measured for every relayed frame


async def test_a_silent_participant_hears_everyone_and_adds_nothing() -> None:
    tones = {"ann": 300.0, "bob": 0.0}
    async with peer_room(tones, FRAMES, voice_s=6.0) as room:
        bob, ann = room.audio("bob", FRAMES), room.audio("ann", FRAMES)
        assert level(bob, 300.0) > 500 and level(bob, VOICE_HZ) > 500
        assert level(ann, 300.0) < 25 and level(ann, VOICE_HZ) > 500
