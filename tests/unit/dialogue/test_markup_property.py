"""Adversarial model output, streamed by a fake chat model split at random points, never yields an undeclared
or malformed world action, and never leaks markup into the spoken text."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialogue import Backend, Character, DialogueManager, ReplyAction, ReplyDone, ReplyEvent, ReplySentence
from dialogue.actions import check_call
from dialogue.testing import ScriptedChatModel, split_text, tool_call_chunk

from .conftest import make_character

pytestmark = pytest.mark.unit

CHARACTER = make_character()

FRAGMENTS = [
    "[", "]", "*", "(", ")", "=", ",", '"', "'", " ", "  ", "\n", ".", "!", "?", ":", ";",
    "wave", "nod", "give_item", "emote", "set_volume", "jump", "lamp", "fly", "explode", "Wave", "rm -rf",
    "target", "item", "emotion", "level", "height", "on", "colour",
    "player", "sword", "map", "axe", "happy", "sad", "HAPPY", "12", "-3", "1.5", "1e9", "nan", "true", "no",
    "Hello", "there", "my friend", "Good morning", "smiles warmly", "{{user}}", "<|im_end|>", "é", "🙂",
    "[wave target=player]", "*nod()*", "[give_item sword player]", "[emote emotion=angry]", "*wave(",
    "[set_volume level=5]", "[lamp on=true]", "[jump]", "[jump height=2.5]", "*give_item(map, target=bob)*",
]  # fmt: skip

model_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=60).map("".join)


def run_reply(character: Character, script: list) -> list[ReplyEvent]:  # type: ignore[type-arg]
    model = ScriptedChatModel(scripts=[script])
    manager = DialogueManager(Backend("fake", model, native_tools=True), character)

    async def collect() -> list[ReplyEvent]:
        return [e async for e in manager.reply("hi")]

    return asyncio.run(collect())


def assert_well_formed(character: Character, events: list[ReplyEvent]) -> ReplyDone:
    assert isinstance(events[-1], ReplyDone)
    assert sum(isinstance(e, ReplyDone) for e in events) == 1
    done = events[-1]
    for ch in "[]*":
        assert ch not in done.full_text
    for e in events:
        if isinstance(e, ReplyAction):
            spec = character.action(e.name)
            assert spec is not None, f"undeclared action {e.name!r} emitted"
            # the typed arguments are exactly what the declaration accepts
            assert check_call(character, e.name, dict(e.args), from_text=False) == dict(e.args)
            assert 0 <= e.at_char <= len(done.full_text)
        elif isinstance(e, ReplySentence):
            assert e.text and e.text == e.text.strip()
            assert done.full_text[e.start_char : e.start_char + len(e.text)] == e.text
    return done


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=model_text, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30))
def test_inline_markup_never_emits_invalid_actions(text: str, cuts: list[int]) -> None:
    events = run_reply(CHARACTER, split_text(text, cuts))
    assert_well_formed(CHARACTER, events)
    # where the stream was split does not matter
    assert events == run_reply(CHARACTER, [text])


json_values = st.one_of(
    st.sampled_from(["player", "sword", "map", "happy", "", "x" * 80, "a]b", "[nod]", "1", "true"]),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
tool_args = st.one_of(
    st.dictionaries(st.sampled_from(["target", "item", "emotion", "level", "height", "on", "bogus"]), json_values).map(
        json.dumps
    ),
    st.text(max_size=12),  # not JSON at all
    st.sampled_from(["[]", "null", '"x"', "{", '{"target": "player"']),
)
tool_names = st.sampled_from(["wave", "nod", "give_item", "emote", "set_volume", "jump", "lamp", "fly", "", "Wave"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    calls=st.lists(st.tuples(tool_names, tool_args, st.lists(st.integers(0, 40), max_size=4)), max_size=4),
    text=model_text,
)
def test_native_tool_calls_never_emit_invalid_actions(calls: list[tuple[str, str, list[int]]], text: str) -> None:
    script: list = [*split_text(text, [len(text) // 2])]  # type: ignore[type-arg]
    for index, (name, args, cuts) in enumerate(calls):
        pieces = split_text(args, cuts) or [""]
        script.append(tool_call_chunk(index, name, pieces[0]))
        script.extend(tool_call_chunk(index, None, piece) for piece in pieces[1:])
    events = run_reply(CHARACTER, script)
    assert_well_formed(CHARACTER, events)
    for index, (name, args, _) in enumerate(calls):
        try:
            parsed = json.loads(args)
        except json.JSONDecodeError:
            continue
        if name == "nod" and parsed == {}:
            assert any(isinstance(e, ReplyAction) and e.name == "nod" for e in events), index
