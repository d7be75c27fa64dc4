"""The LLM worker's supervisor: starts the worker process, watches it, restarts it when it dies.

    start()   llama.cpp: re-encode the model if needed (in a subprocess), choose the CPU variant
              (dialogue.llamacpp.cpu, probes in subprocesses, cached); then spawn the worker with its engine
              and wait until it is ready; raises BackendError with the worker's own words when it cannot start
    a death   (a segfault, an OOM kill, SIGKILL): the requests in flight fail at once (their connections
              close); the worker is started again after a backoff (0.5 s, doubling, at most 10 s) with a log
              line that says why it died; more than ``max_restarts`` deaths within ``restart_window_s`` and
              the supervisor gives up (state "failed") rather than crash-loop
    status()  the worker's state, pid and restart count, for /healthz

It runs on its own thread, so it works the same under any event loop, or none (the CLI).
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dialogue.errors import BackendError, BackendUnavailableError
from dialogue.llamacpp import cpu

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "restarting", "failed", "stopped"]
EngineKind = Literal["llamacpp", "transformers"]
WORKER = "dialogue.worker.process"
SPIN_COUNT = 300_000  # OpenMP barrier spins before a thread sleeps (libgomp's own default when nothing is set)


@dataclass(frozen=True)
class WorkerOptions:
    model: Path  # the .gguf the worker serves (transformers: a .gguf or a model directory)
    engine: EngineKind = "llamacpp"
    device: Literal["auto", "cpu", "cuda"] = "auto"  # transformers: where the model runs
    convert_cache: Path | None = None  # transformers: where a GGUF's dequantized copy is kept
    source: Path | None = None  # re-encode this file into ``model`` first, when ``model`` is missing
    quant: str = "q8_0"
    threads: int = 0
    context: int = 2048
    contexts: int = 2  # llama.cpp contexts; transformers: generations at once
    halt_batch: int = 64  # prompt tokens between two checks for a cancel (barge-in) or a preemption
    cpu_cache: Path | None = None  # where the CPU variant choice is kept (per machine)
    cpu_variant: str = "auto"  # or a variant name: that one only
    start_timeout_s: float = 180.0
    probe_timeout_s: float = 120.0
    max_restarts: int = 5  # deaths within restart_window_s before giving up
    restart_window_s: float = 60.0
    backoff_s: float = 0.5
    backoff_max_s: float = 10.0


class Supervisor:
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self._dir = Path(tempfile.mkdtemp(prefix="llmasos-llm-"))
        self.socket = self._dir / "worker.sock"
        self._cond = threading.Condition()
        self._state: State = "starting"
        self._proc: subprocess.Popen[bytes] | None = None
        self._restarts = 0
        self._deaths: deque[float] = deque()
        self._last_exit = ""
        self._error = ""
        self._choice: cpu.Choice | None = None
        self._features = ""  # what the worker said it runs with when it was ready
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    # ---- life --------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the model, choose the CPU variant, start the worker (blocking). Raises BackendError."""
        o = self.options
        try:
            if o.engine == "llamacpp":
                if o.source is not None and not o.model.is_file():
                    self._run_once("prepare", ["--source", str(o.source), "--quant", o.quant], o.start_timeout_s)
                self._choice = cpu.choose(o.model, self._probe, o.cpu_cache, only=o.cpu_variant)
            self._spawn()
        except BackendError as exc:
            self._set("failed", error=str(exc))
            raise
        except (OSError, RuntimeError) as exc:
            self._set("failed", error=str(exc))
            raise BackendError(f"the LLM worker cannot start: {exc}") from exc
        self._monitor = threading.Thread(target=self._watch, name="llm-supervisor", daemon=True)
        self._monitor.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the worker (SIGTERM, then SIGKILL) and the supervision. Blocking; idempotent."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout_s)
        self._set("stopped")
        shutil.rmtree(self._dir, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        with self._cond:
            proc = self._proc
            choice = self._choice
            return {
                "engine": self.options.engine,
                "state": self._state,
                "pid": proc.pid if proc is not None and self._state == "ready" else None,
                "restarts": self._restarts,
                "last_exit": self._last_exit or None,
                "error": self._error or None,
                "cpu_variant": None if choice is None else choice.variant,
                "cpu_features": None if choice is None else choice.features,
                "runs_on": self._features or None,
            }

    @property
    def choice(self) -> cpu.Choice | None:
        return self._choice

    @property
    def pid(self) -> int | None:
        """The pid of the worker started last (it may have died since: the monitor tells soon after)."""
        proc = self._proc
        return None if proc is None else proc.pid

    def wait_ready(self, timeout_s: float, not_pid: int | None = None) -> Path:
        """The worker's socket once it is ready (blocking); with ``not_pid``, once a worker other than that one
        (a worker that refused a connection) is ready. Raises BackendUnavailableError when none is, in time."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._state in ("starting", "restarting") or (self._state == "ready" and self.pid == not_pid):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._state != "ready":
                why = self._error or self._last_exit or self._state
                raise BackendUnavailableError(f"the LLM worker is {self._state} ({why})", retryable=True)
        return self.socket

    # ---- the worker process --------------------------------------------------------------------------------------

    @staticmethod
    def _env() -> dict[str, str]:
        """The worker's environment. OpenMP threads that wait at a barrier spin a bounded while, then sleep
        (unless the operator sets OMP_WAIT_POLICY or GOMP_SPINCOUNT): the worker shares the cores with ASR, TTS
        and WebRTC. Measured in the voice-to-voice bench here: spinning without bound (ACTIVE) starved the rest
        (23 s per turn); sleeping at once (PASSIVE) made each token wait for a wake-up (5.6-6.2 s p50 over 12
        turns); a bounded spin was fastest (see docs/architecture.md)."""
        env = dict(os.environ)
        if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
            env["OMP_WAIT_POLICY"] = "ACTIVE"
            env["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
        return env

    def _args(self, mode: str) -> list[str]:
        o = self.options
        args = [
            sys.executable, "-m", WORKER, mode, "--engine", o.engine, "--model", str(o.model),
            "--threads", str(o.threads), "--context", str(o.context), "--contexts", str(o.contexts),
            "--halt-batch", str(o.halt_batch), "--device", o.device,
        ]  # fmt: skip
        if o.convert_cache is not None:
            args += ["--convert-cache", str(o.convert_cache)]
        return args

    def _run_once(self, mode: str, extra: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                [*self._args(mode), *extra],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                env=self._env(),
            )
        except subprocess.TimeoutExpired:
            raise BackendError(f"the LLM worker's {mode} step did not finish in {timeout_s:.0f} s") from None
        if done.returncode != 0:
            raise BackendError(
                f"the LLM worker's {mode} step failed ({cpu.exit_reason(done.returncode)}): {_tail(done.stderr)}"
            )
        return done

    def _probe(self, library: Path) -> tuple[bool, str, str]:
        """Run the model on one CPU variant in a subprocess. A probe killed by a signal (SIGILL, SIGSEGV) or
        that hangs refuses the variant; one that fails in Python (a bad model file) fails the start."""
        args = [*self._args("probe"), "--variant", str(library)]
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=self.options.probe_timeout_s, env=self._env()
            )
        except subprocess.TimeoutExpired:
            return False, f"the probe did not finish in {self.options.probe_timeout_s:.0f} s", ""
        if done.returncode < 0:
            return False, cpu.exit_reason(done.returncode), ""
        if done.returncode > 0:
            raise BackendError(f"the LLM worker cannot run {self.options.model.name}: {_tail(done.stderr)}")
        try:
            return True, "ok", str(json.loads(done.stdout.strip().splitlines()[-1])["features"])
        except (ValueError, KeyError, IndexError):
            return False, f"the probe printed no result: {_tail(done.stdout)}", ""

    def _spawn(self) -> None:
        """Start the worker and wait until it says it is ready (or dies, or times out)."""
        o = self.options
        args = [*self._args("serve"), "--socket", str(self.socket)]
        if log.isEnabledFor(logging.DEBUG):
            args += ["--log-level", "debug"]  # one line per request: waits, cache, speed, how it ended
        if self._choice is not None and self._choice.library:
            args += ["--variant", self._choice.library, "--variant-name", str(self._choice.variant)]
        ready_r, ready_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [*args, "--ready-fd", str(ready_w)],
                pass_fds=(ready_w,),
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C in the server's terminal reaches the server, which stops it
            )
        finally:
            os.close(ready_w)
        last_words: deque[str] = deque(maxlen=8)
        threading.Thread(target=_relay, args=(proc, last_words), name="llm-worker-stderr", daemon=True).start()
        with self._cond:
            self._proc = proc
        try:
            line = _read_line(ready_r, o.start_timeout_s)
        finally:
            os.close(ready_r)
        if not line:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            words = " | ".join(last_words) or "(nothing on stderr)"
            raise BackendError(f"the LLM worker did not start ({cpu.exit_reason(proc.returncode)}): {words}")
        try:
            features = str(json.loads(line).get("features") or "")
        except (ValueError, AttributeError):
            features = ""
        with self._cond:
            self._features = features.splitlines()[0] if features else ""
        runs: dict[str, object] = {"variant": self._choice.variant} if self._choice else {"runs_on": self._features}
        log.info("llm worker ready", extra={"pid": proc.pid, "engine": o.engine, **runs})
        self._set("ready")

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None
            code = proc.wait()
            if self._stopping.is_set():
                return
            now = time.monotonic()
            self._deaths.append(now)
            while self._deaths and now - self._deaths[0] > self.options.restart_window_s:
                self._deaths.popleft()
            reason = cpu.exit_reason(code)
            if len(self._deaths) > self.options.max_restarts:
                log.error(
                    "llm worker died too often; giving up",
                    extra={"pid": proc.pid, "exit": reason, "deaths": len(self._deaths)},
                )
                self._set("failed", last_exit=reason, error=f"died {len(self._deaths)} times in a row")
                return
            backoff = min(self.options.backoff_max_s, self.options.backoff_s * 2 ** (len(self._deaths) - 1))
            log.error(
                "llm worker died; restarting",
                extra={"pid": proc.pid, "exit": reason, "restart_in_s": backoff, "restarts": self._restarts + 1},
            )
            self._set("restarting", last_exit=reason)
            if self._stopping.wait(backoff):
                return
            with self._cond:
                self._restarts += 1
            try:
                self._spawn()
            except BackendError as exc:  # counted as another death by the next loop (its process has exited)
                log.error("llm worker restart failed", extra={"reason": str(exc)})

    def _set(self, state: State, *, last_exit: str | None = None, error: str | None = None) -> None:
        with self._cond:
            if self._state == "stopped":
                return
            self._state = state
            if last_exit is not None:
                self._last_exit = last_exit
            if error is not None:
                self._error = error
            elif state == "ready":
                self._error = ""
            self._cond.notify_all()


QUIET = ("load_backend:",)  # llama.cpp's own lines that say nothing an operator needs


def _relay(proc: subprocess.Popen[bytes], last_words: deque[str]) -> None:
    """The worker's stderr to ours (its log lines, a Python traceback), keeping the last lines for errors."""
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode(errors="replace").rstrip()
        last_words.append(line)
        if line and not line.startswith(QUIET):
            print(line, file=sys.stderr, flush=True)
    proc.stderr.close()


def _read_line(fd: int, timeout_s: float) -> str:
    """One line from a pipe, or "" at EOF (the writer died) or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            return ""
        data += chunk
    return data.decode(errors="replace").strip()


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(nothing on stderr)"
