"""LLM backends, each a LangChain chat model: local transformers, an OpenAI-compatible endpoint, llama.cpp."""
