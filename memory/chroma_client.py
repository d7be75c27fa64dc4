"""Opening ChromaDB: an embedded PersistentClient in a folder, or an HttpClient to a `chroma run` server.

Telemetry is always off: nothing reaches for the network except the configured server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from memory.errors import MemoryBackendError, MemoryInputError


def _chroma_settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def parse_url(url: str) -> tuple[str, int, bool]:
    """``http://host:port`` to (host, port, ssl). The port defaults to 8000 (Chroma's)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MemoryInputError(f"chroma_url {url!r} is not an http(s)://HOST:PORT address")
    if parts.path not in ("", "/"):
        raise MemoryInputError(f"chroma_url {url!r} must not have a path")
    try:
        port = parts.port
    except ValueError:
        raise MemoryInputError(f"chroma_url {url!r} has an invalid port") from None
    ssl = parts.scheme == "https"
    return parts.hostname, port if port is not None else (443 if ssl else 8000), ssl


def open_persistent(path: Path) -> Any:
    """An embedded Chroma in ``path`` (created if missing). Close it with ``close_client``."""
    import chromadb

    path.mkdir(parents=True, exist_ok=True)
    try:
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
    except Exception as exc:
        raise MemoryBackendError(f"cannot open the Chroma database in {path}: {exc}") from exc


def open_http(url: str) -> Any:
    """A client of a Chroma server (``chroma run --path DIR --host H --port P``); checks that it answers."""
    import chromadb

    host, port, ssl = parse_url(url)
    client = None
    try:
        client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_chroma_settings())
        client.heartbeat()
    except Exception as exc:
        if client is not None:
            close_client(client)
        raise MemoryBackendError(
            f"cannot reach the Chroma server at {url}: {exc}. Start it (chroma run --path DIR --host {host} "
            f"--port {port}) or unset memory.chroma_url to use the embedded database",
            retryable=True,
        ) from exc
    return client


def close_client(client: Any) -> None:
    """Close a client from ``open_persistent`` or ``open_http``.

    ``Client.close()`` releases the embedded database but leaves an HTTP client's connection pools open (its
    own and its internal admin client's, chromadb 1.5.9), so those are closed here as well.
    """
    servers = [getattr(c, "_server", None) for c in (client, getattr(client, "_admin_client", None))]
    client.close()
    for server in servers:
        session = getattr(server, "_session", None)
        if session is not None and hasattr(session, "close"):
            session.close()
