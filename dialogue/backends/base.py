"""What every streaming backend shares: the blocking call is the stream, gathered; one role mapping."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def role(message: BaseMessage) -> str:
    """The chat-template / OpenAI role of a LangChain message."""
    return _ROLES.get(message.type, "user")


class StreamingChatModel(BaseChatModel):
    """A chat model defined by its ``_stream``; ``invoke`` gathers the stream."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
