"""dialogue/: characters, world-action schema, LLM backends, the LangChain dialogue manager.

Imports nothing of llmasos, voice, memory or rtc.
"""
