"""`llmasos serve`: the HTTP + WebRTC server (browser client at /)."""

from __future__ import annotations

import argparse
from typing import Any

from llmasos.errors import ConfigError
from llmasos.settings import Settings, load_settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="start the server (browser client at /)")
    p.add_argument("--host", default=None, help="address to listen on (default: server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: server.port, 8000)")
    p.set_defaults(handler=run)


def verify_for_serving(settings: Settings) -> None:
    """Check the sha256 of every packaged model this configuration loads; raises ModelError (exit 2)."""
    from llmasos.models import DEFAULTS, ModelStore, Role, asr_model_name, get_spec
    from llmasos.voice_factory import VOICES

    store = ModelStore(settings.data_dir)
    wanted = {
        Role.VAD: None if settings.vad.model_dir else DEFAULTS[Role.VAD],
        Role.ASR: None if settings.asr.model_dir else asr_model_name(settings.asr.model),
        Role.TTS: None if settings.tts.model_dir else VOICES.get(settings.tts.voice),
        Role.LLM: None if settings.llm.model_dir or settings.llm.backend == "openai" else DEFAULTS[Role.LLM],
        Role.EMBEDDINGS: None if settings.embeddings.model_dir else DEFAULTS[Role.EMBEDDINGS],
    }
    for name in wanted.values():
        if name is not None:
            store.verify(get_spec(name))


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from llmasos.server import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = load_settings(args.config, server=overrides)
    verify_for_serving(settings)  # a corrupt or missing model refuses the start, before anything listens
    options = uvicorn_options(settings)
    app = create_app(settings)
    scheme = "https" if "ssl_certfile" in options else "http"
    print(
        f"llmasos: serving on {scheme}://{settings.server.host}:{settings.server.port}/ (loading models ...)",
        flush=True,
    )
    uvicorn.run(app, **options)
    return 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How `serve` runs uvicorn: address, log level, graceful shutdown, and HTTPS when a certificate is set."""
    server = settings.server
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "log_level": "warning" if settings.log_level != "debug" else "debug",
        "timeout_graceful_shutdown": 5,
    }
    if server.tls_cert is not None and server.tls_key is not None:
        for what, path in (("tls_cert", server.tls_cert), ("tls_key", server.tls_key)):
            if not path.is_file():
                raise ConfigError(f"server.{what} {path} does not exist")
        options.update(ssl_certfile=str(server.tls_cert), ssl_keyfile=str(server.tls_key))
    return options
