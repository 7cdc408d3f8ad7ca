"""The real OpenAI-compatible server for the tests: llama-cpp-python's, serving the bundled SmolLM2-135M GGUF on
127.0.0.1 at a free port (one per session, one more with an API key). Skips, with the reason, only where
llama-cpp-python is not installed (`pip install 'definemed[server]'`; `.ci/run` and `make test` install it)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from definemed.llm.local_server import LocalServer

SERVER_KEY_ENV = "DEFINEMED_TEST_SERVER_KEY"
SERVER_KEY = "sk-real-server-SECRET-31337"
MODEL = "smollm2"


def _need_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(
            "llama-cpp-python is not installed: pip install 'definemed[server]' (builds llama.cpp once, "
            "~7 min); .ci/run and make test install it"
        )


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    _need_llama_cpp()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    with LocalServer(alias=MODEL, log=log) as server:
        yield server


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    _need_llama_cpp()
    log = tmp_path_factory.mktemp("llama_server_key") / "server.log"
    os.environ[SERVER_KEY_ENV] = SERVER_KEY  # the server process reads it at start
    try:
        with LocalServer(alias=MODEL, api_key_env=SERVER_KEY_ENV, log=log) as server:
            yield server
    finally:
        os.environ.pop(SERVER_KEY_ENV, None)
