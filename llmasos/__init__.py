"""LLMasOS: the composition root. Settings, model registry, conversation orchestration, server and CLI.

voice/, dialogue/, memory/ and rtc/ never import each other; this package wires them.
"""

__version__ = "0.1.0"
