"""memory/: the memory store protocol, its ChromaDB implementation, embeddings.

Imports nothing of llmasos, voice, dialogue or rtc.
"""
