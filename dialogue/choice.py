"""Which declared world action the player's words ask for: a choice made beside the reply, not markup that the
model has to remember to write.

Small models do not write action markup: asked "Wave at me!" or "Give me a steel sword, please.", the packaged
135M model answered in words and performed nothing. So the action is chosen from what the player said, by one
of two choosers behind one Protocol:

- ``CueChooser`` (the default): deterministic. An utterance asks for an action when one of its clauses is a
  request (an imperative, "can you ...", "I'd like ...", with fillers and the character's names stripped) whose
  verb is a cue of an action the character declares; each argument is then resolved against its declared type
  (an enum value named in the clause, "me" as ``player``, a thing after "at"/"to", a number). A request whose
  arguments cannot be resolved ("give me a sword" when two swords are declared) chooses nothing rather than
  guess. A few implicit cues: a greeting waves, thanks nods. Narration and questions ("I waved at Bob",
  "do you wave?") never match: the verb must begin the request.
- ``ModelChooser``: a grammar-constrained JSON choice over the declared actions and their typed arguments, plus
  "none" (``json_schema`` on a backend with ``structured_output``). For models big enough to judge intent.

Either way the result is validated by ``actions.check_call``: a chosen action is always a valid declared one.
``bench actions`` measures both on a labelled set.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from dialogue.actions import ActionRejected, check_call, json_schema
from dialogue.types import ActionParam, ActionSpec, ArgValue, Character

log = logging.getLogger(__name__)

MAX_ACTIONS = 2  # at most this many actions chosen for one utterance ("point at the door and wave")


@dataclass(frozen=True)
class ActionCall:
    """A declared action with validated arguments, and why it was chosen (for logs and the bench)."""

    name: str
    args: dict[str, ArgValue]
    cue: str = ""


class ActionChooser(Protocol):
    """Chooses the world actions that the player's words ask of ``character`` (none: an empty tuple)."""

    async def choose(self, character: Character, text: str) -> tuple[ActionCall, ...]: ...


# -- the cue chooser ------------------------------------------------------------------------------------------

# what may come before the verb of a request, any number of times, in any order
_FILLERS = (
    r"please|pls|now|ok|okay|alright|all right|so|and|then|hey|oh|ooh|um|uh|er|hmm|well|yes|yeah|sure|quick|"
    r"quickly|just|also|first|come on|anyway|actually|listen|right|honestly|by the way|while you're at it|"
    r"go ahead and|could you|can you|would you|will you|would you mind|do you mind|mind|kindly|"
    r"i want you to|i'd like you to|i would like you to|i need you to|you should|why don't you|"
    r"could you please|can you please|would you please|let me see you|i want to see you|"
    r"would you be so kind as to|would you be kind enough to|be a dear and|do me a favou?r and|"
    r"i was wondering if you could|i wonder if you could|think you could|any chance you could|"
    r"if you could|if you don't mind|is it possible for you to|are you able to|you can|you could|"
    r"might i trouble you to|may i trouble you to|could i trouble you to|can i ask you to|may i ask you to|"
    r"i'd be grateful if you could|i would be grateful if you would|pray|prithee|i beg you"
)
# a request may also begin after one of these, later in a clause ("before we leave I need you to walk us ...")
_ANCHORS = (
    r"could you|can you|would you|will you|would you mind|i need you to|i want you to|i'd like you to|"
    r"i would like you to|would you be so kind as to|please|mind|if you could"
)
_QUEST_WORDS = r"(?:work|job|jobs|task|tasks|quest|quests|mission|missions|errand|errands|contract|bounty)"
_DET = r"(?:a |an |the |that |this |your |some |any |one of your )?(?:[a-z']+ ){0,2}?"
# cues of the known action vocabulary: regular expressions matched at the start of a request (after fillers)
_CUES: dict[str, tuple[str, ...]] = {
    "wave": (r"wave|waving|give (?:me|us|them|him|her) a wave|say (?:hi|hello)",),
    "nod": (r"nod|nodding|give (?:me|us) a nod",),
    "bow": (r"bow|bowing|take a bow",),
    "point_at": (r"point|pointing|show me where|show me which|show me|show us",),
    "give_item": (
        r"give|giving|hand|handing|pass|passing|toss|throw|sell|selling|get me|fetch me|bring me(?! to)|"
        r"entrust|lend|loan|spare|hand over|give over|"
        r"let me have|can i have|could i have|may i have|can i get|could i get|i'll take|i will take|"
        r"i'd like|i would like|i want|i'll have|i'll buy|i will buy|i want to buy|i'd like to buy|"
        r"here(?:'s| is| are) (?:\d+ |your |some )?(?:\w+ )?(?:silver|gold|coins?|money|payment)(?: for)?",
    ),
    "walk_to": (
        r"walk|walking|go|head|lead|leading|take me|take us|taking me|taking us|bring me to|bring us to|"
        r"show me the way|show us the way|come with me|follow me|guide me|guide us|"
        r"(?:i want to|i'd like to|i would like to|can we|could we|shall we|let's|let us) (?:go|walk|head)|"
        r"(?:i'd love to|i would love to|i want to|i'd like to|can i|can we|could we) (?:see|visit)",
    ),
    "emote": (
        r"smile|smiling|laugh|laughing|frown|frowning|look|looking|cheer up|cry|grin|be|"
        r"show me|show us|give me|give us|put on|make",
    ),
    "offer_quest": (
        rf"(?:do you have|have you got|got|is there|are there) {_DET}{_QUEST_WORDS}|"
        rf"(?:give|offer|assign) (?:me|us) {_DET}{_QUEST_WORDS}|i(?:'m| am) looking for {_DET}{_QUEST_WORDS}|"
        rf"(?:i'll|i will|i'd like to|i would like to|i want to|let me|can i|could i) "
        rf"(?:take on|take|do|accept|handle|be the one)(?: {_DET}{_QUEST_WORDS})?|"
        r"i(?:'m| am) ready (?:to|for)|i(?:'ll| will| can) (?:deal with|handle|take care of|help with)",
    ),
}
# actions that offer one of their values: when the request names none ("any work?"), the first declared one
_ANY_VALUE = {"offer_quest"}
# implicit cues: whole clauses that are an action by themselves
_IMPLICIT: dict[str, tuple[str, dict[str, str]]] = {
    r"(?:hello|hi|hey|howdy|greetings|good (?:morning|afternoon|evening|day)|well met|hail|goodbye|bye|farewell)"
    r"(?: there| friend| everyone| all)?": ("wave", {"target": "player"}),
    r"(?:thanks|thank you|cheers|much appreciated)(?: so much| a lot| very much)?": ("nod", {}),
}
# what names an emotion besides its own word
_FEELINGS = {
    "happy": "smile smiling laugh laughing grin grinning glad cheer cheerful joy joyful",
    "sad": "cry crying frown frowning weep sorrow unhappy",
    "angry": "scowl mad furious rage cross",
    "surprised": "gasp shocked amazed astonished",
    "thinking": "think ponder wonder thoughtful hmm",
    "worried": "worry nervous anxious concerned",
    "excited": "thrilled eager",
}
_SELF = {"me", "us", "myself", "ourselves", "player"}
# a noun phrase ends at these: conjunctions, prepositions, pronouns that begin a clause, politeness
_STOP = {
    "please", "and", "then", "now", "for", "with", "so", "too", "again", "quickly", "here", "there", "of", "over",
    "when", "if", "because", "while", "before", "after", "once", "would", "will", "could", "can", "from", "by",
    "in", "on", "near", "under", "behind", "beside", "you", "i", "we", "he", "she", "they", "it", "which", "who",
    "that's", "right", "real",
}  # fmt: skip
# after an argument-less action's verb, these make it another thing ("nod off", "bow and arrow", "bow tie")
_NOT_BARE = {"off", "out", "and", "tie", "tie's", "away", "string", "arrow", "arrows"}
_PRONOUNS = {"it", "that", "this", "them", "those", "these", "one"}
_ARTICLES = {"the", "a", "an", "that", "this", "those", "these", "my", "your", "some", "one", "any", "his", "her"}
_TARGET_PARAMS = {"target", "who", "to", "recipient", "person"}
_CLAUSE = re.compile(r"[.!?;]+|,\s*(?:and\s+)?(?:then\s+)?|\s+and then\s+|\s+then\s+|\s+and\s+(?=\w+\b)")
_TOKEN = re.compile(r"[a-z0-9']+")
_NUMBER = re.compile(r"\b\d{1,9}\b")


class CueChooser:
    """Deterministic action choice from request forms and cue words (see the module docstring)."""

    async def choose(self, character: Character, text: str) -> tuple[ActionCall, ...]:
        return choose_by_cues(character, text)


def choose_by_cues(character: Character, text: str) -> tuple[ActionCall, ...]:
    """The actions ``text`` asks ``character`` for, by cues; implicit ones only when nothing is asked outright."""
    if not character.actions or not text.strip():
        return ()
    names = _names_pattern(character)
    lowered = _normal(text)
    clauses = [c.strip() for c in _CLAUSE.split(lowered) if c.strip()]
    everything = _TOKEN.findall(lowered)  # an argument may be named in another clause ("The map. Hand it over.")
    chosen: list[ActionCall] = []
    anchor = re.compile(rf"\b(?:{_ANCHORS})\b")
    for clause in clauses:
        body = _strip_fillers(clause, names)
        call = _explicit(character, body, everything)
        for m in anchor.finditer(clause) if call is None else ():
            call = _explicit(character, _strip_fillers(clause[m.start() :], names), everything)
            if call is not None:
                break
        if call is not None and all(c.name != call.name for c in chosen):
            chosen.append(call)
        if len(chosen) == MAX_ACTIONS:
            break
    if chosen:
        return tuple(chosen)
    for clause in clauses[:1]:  # a greeting or a thanks is implicit only as the first thing said
        body = _strip_fillers(clause, names, fillers=False)
        for pattern, (name, args) in _IMPLICIT.items():
            if re.fullmatch(pattern, body) and (call := _implicit(character, name, args)) is not None:
                return (call,)
    return ()


def _normal(text: str) -> str:
    """Lower case, one kind of apostrophe, hyphens between letters as spaces (speech recognition writes
    "hand-me"), single spaces."""
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text.lower().replace("\u2019", "'"))
    return re.sub(r"\s+", " ", text)


def _names_pattern(c: Character) -> str:
    words = {c.name.lower(), *c.name.lower().split(), c.role.lower(), *(a.lower() for a in c.aliases)}
    return "|".join(sorted((re.escape(w) for w in words if w), key=len, reverse=True))


def _longest_first(alternatives: str) -> str:
    """A regex alternation with its longer alternatives tried first ("would you be so kind as to", not "would
    you")."""
    return "|".join(sorted(alternatives.split("|"), key=len, reverse=True))


_FILLERS = _longest_first(_FILLERS)
_ANCHORS = _longest_first(_ANCHORS)


def _strip_fillers(clause: str, names: str, *, fillers: bool = True) -> str:
    head = rf"(?:{_FILLERS}|{names})" if fillers else rf"(?:{names}|and|so|oh|well)"
    pattern = re.compile(rf"^(?:{head})\b[\s,]*")
    body = clause.strip(" ,")
    while (m := pattern.match(body)) and m.end() > 0:
        body = body[m.end() :]
    return re.sub(r"[\s,]*\b(?:please|now|" + names + r")$", "", body).strip(" ,")


def _cues(spec: ActionSpec) -> tuple[str, ...]:
    known = _CUES.get(spec.name)
    if known is not None:
        return known
    verb = spec.name.split("_")[0]
    return (rf"{re.escape(verb)}(?:s|ing)?",)  # a declared action of its own: its name's verb ("ring_bell")


def _explicit(character: Character, body: str, everything: list[str]) -> ActionCall | None:
    """The action this request asks for: of the actions with a cue at its start whose arguments resolve, the
    one with the most evidence (enum values named in the words), then the longest cue."""
    candidates: list[tuple[int, int, ActionCall]] = []
    for spec in character.actions:
        for cue in _cues(spec):
            m = re.match(rf"(?:{cue})\b", body)
            if m is None:
                continue
            resolved = _resolve(spec, body, body[m.end() :], everything)
            if resolved is None:
                continue
            args, evidence = resolved
            try:
                call = ActionCall(spec.name, check_call(character, spec.name, args, from_text=False), m.group())
            except ActionRejected as exc:
                log.debug("cue rejected", extra={"action": spec.name, "reason": str(exc)})
                continue
            candidates.append((evidence, m.end(), call))
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c[0], c[1]))[2]


def _implicit(character: Character, name: str, args: dict[str, str]) -> ActionCall | None:
    spec = character.action(name)
    if spec is None:
        return None
    wanted = {k: v for k, v in args.items() if spec.param(k) is not None}
    try:
        return ActionCall(name, check_call(character, name, wanted, from_text=False), "implicit")
    except ActionRejected:
        return None


def _resolve(spec: ActionSpec, body: str, rest: str, everything: list[str]) -> tuple[dict[str, Any], int] | None:
    """Every argument ``spec`` needs, from the request, and how many enum values its words named (None: a
    required argument cannot be resolved). An enum value not named in the request may be named elsewhere in
    the utterance."""
    args: dict[str, Any] = {}
    evidence = 0
    words = _TOKEN.findall(body)
    for p in spec.params:
        value = _value(p, spec, words, rest, everything)
        if value is None and p.type == "enum":
            value = _enum(p, everything)
        if value is not None and p.type == "enum":
            evidence += 1
        if value is None and p.type == "enum" and spec.name in _ANY_VALUE and p.choices:
            value = p.choices[0]
        if value is None:
            if p.required:
                return None
            continue
        args[p.name] = value
    if not spec.params and (following := _TOKEN.findall(rest)) and following[0] in _NOT_BARE:
        return None  # "nod off", "bow and arrow": another thing than the action
    return args, evidence


def _value(p: ActionParam, spec: ActionSpec, words: list[str], rest: str, everything: Sequence[str] = ()) -> Any:
    if p.type == "enum":
        return _enum(p, words)
    if p.type in ("integer", "number"):
        m = _NUMBER.search(rest)
        return (int(m.group()) if p.type == "integer" else float(m.group())) if m else None
    if p.type == "boolean":
        return None
    # a string: who it is for, or what it is
    if p.name in _TARGET_PARAMS:
        # an action aimed at one thing takes its object as the target ("show me the door")
        return _target(rest, direct=len(spec.params) == 1 and spec.name != "wave", before=everything, spec=spec)
    return _thing(rest)


def _enum(p: ActionParam, words: list[str]) -> str | None:
    """The one declared value the words name (all of its parts, else the most of them); None when unclear."""
    said = set().union(*(_forms(w) for w in words)) if words else set()
    scored: list[tuple[float, str]] = []
    for choice in p.choices:
        parts = [w for w in re.split(r"[_\s\-]+", choice.lower()) if w]
        hits = sum(1 for w in parts if _forms(w) & said)
        if any(_forms(w) & said for w in _FEELINGS.get(choice.lower(), "").split()):
            hits = max(hits, len(parts))
        if hits:
            scored.append((hits / len(parts), choice))
    if not scored:
        return None
    scored.sort(reverse=True)
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        return None  # "a sword": the iron one or the steel one?
    return scored[0][1]


def _forms(word: str) -> set[str]:
    """A word and its possible singulars ("horseshoes", "wolves" -> "wolf", "berries" -> "berry")."""
    word = word.strip("'")
    if word.endswith("'s"):
        word = word[:-2]
    forms = {word}
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
        if word.endswith("es"):
            forms.add(word[:-2])
        if word.endswith("ves"):
            forms.add(word[:-3] + "f")
        if word.endswith("ies"):
            forms.add(word[:-3] + "y")
    return forms


def _target(rest: str, *, direct: bool = False, before: Sequence[str] = (), spec: ActionSpec | None = None) -> str:
    """Whom or what it is aimed at: "me" is the player, "at the anvil" the anvil, with ``direct`` the object
    itself ("show me the door"), "it" what the utterance named ("the anvil ..., point at it"); the player when
    unsaid."""
    words = _TOKEN.findall(rest)
    for i, w in enumerate(words):
        if w in ("at", "to", "toward", "towards"):
            following = words[i + 1 : i + 2]
            if following and following[0] in _PRONOUNS:
                return _antecedent(before) or "player"
            thing = _phrase(words[i + 1 :])
            if thing:
                return "player" if thing in _SELF else thing
    if spec is not None and not direct and (whom := _indirect_object(words, spec)):
        return whom
    objects = [w for w in words if w not in _SELF and w not in ("at", "to", "toward", "towards")]
    if direct and objects and objects[0] in _PRONOUNS and (thing := _antecedent(before)):
        return thing
    if direct and (thing := _phrase(objects)):
        return thing
    return "player"


def _indirect_object(words: Sequence[str], spec: ActionSpec) -> str:
    """Whom a thing is given to when named before it ("hand your daughter the hammer"): a phrase right after the
    verb that names none of the action's values, with one of them after it."""
    if not words or words[0] in _SELF:
        return ""
    values = {
        f for p in spec.params for c in p.choices for part in re.split(r"[_\s\-]+", c.lower()) for f in _forms(part)
    }
    whom = _phrase(words)
    if not whom or whom in _PRONOUNS or set(whom.split()) & values:
        return ""
    later = words[len(whom.split()) + (words[0] in _ARTICLES) :]
    return whom if any(_forms(w) & values for w in later) else ""


def _antecedent(words: Sequence[str]) -> str:
    """The first thing the utterance named with an article ("which one's the anvil ..."), for an "it"."""
    for i, w in enumerate(words):
        if w in ("the", "that", "this", "those", "these") and (thing := _phrase(words[i + 1 :])):
            if thing not in _SELF and thing not in _PRONOUNS:
                return thing
    return ""


def _thing(rest: str) -> str | None:
    words = [w for w in _TOKEN.findall(rest) if w not in _SELF]
    if words and words[0] in ("at", "to", "toward", "towards"):
        words = words[1:]
    return _phrase(words) or None


def _phrase(words: Sequence[str]) -> str:
    """The noun phrase at the start of ``words``: articles dropped, up to three words, up to a stop word."""
    out: list[str] = []
    for w in words:
        if w in _SELF and not out:
            return w
        if w in _STOP or w in _SELF or len(out) == 3:
            break
        if w in _ARTICLES and not out:
            continue
        out.append(w)
    return " ".join(out)


# -- the model chooser ----------------------------------------------------------------------------------------

_CHOICE_RULES = (
    "You decide whether the player's words ask the character to perform one of its actions. Answer with JSON "
    'only: {"action": "none"} for talk, questions and anything that asks for no action; otherwise the action '
    "and its arguments."
)


def choice_schema(character: Character) -> dict[str, Any]:
    """The JSON Schema of a choice: "none", or one declared action with its typed arguments."""
    options: list[dict[str, Any]] = [
        {"type": "object", "properties": {"action": {"const": "none"}}, "required": ["action"]}
    ]
    for spec in character.actions:
        options.append(
            {
                "type": "object",
                "properties": {"action": {"const": spec.name}, "args": json_schema(spec)},
                "required": ["action", "args"],
            }
        )
    return {"anyOf": options}


class ModelChooser:
    """A grammar-constrained choice by the model (its output is a valid choice by construction, then checked)."""

    def __init__(self, model: BaseChatModel, *, max_new_tokens: int = 48) -> None:
        self._model = model
        self._max_new_tokens = max_new_tokens

    async def choose(self, character: Character, text: str) -> tuple[ActionCall, ...]:
        if not character.actions or not text.strip():
            return ()
        actions = "\n".join(f"- {a.name}: {a.description or a.name}" for a in character.actions)
        messages = [
            SystemMessage(f"{_CHOICE_RULES}\nThe actions of {character.name}:\n{actions}"),
            HumanMessage(f"The player says: {text.strip()}"),
        ]
        reply = await self._model.ainvoke(
            messages, json_schema=choice_schema(character), max_new_tokens=self._max_new_tokens, temperature=0.0
        )
        return parse_choice(character, str(reply.content))


def parse_choice(character: Character, raw: str) -> tuple[ActionCall, ...]:
    """A model's choice as a validated call (nothing when it says none, or writes something invalid)."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        log.warning("action choice is not JSON", extra={"character": character.id})
        return ()
    if not isinstance(data, dict) or data.get("action") in (None, "none"):
        return ()
    name, args = str(data.get("action")), data.get("args") or {}
    if not isinstance(args, dict):
        return ()
    try:
        return (ActionCall(name, check_call(character, name, args, from_text=False), "model"),)
    except ActionRejected as exc:
        log.warning("action choice rejected", extra={"character": character.id, "reason": str(exc)})
        return ()
