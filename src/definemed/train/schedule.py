"""Learning-rate schedules as multipliers of the peak rate: linear (the paper), cosine and warmup-stable-decay.

All share a linear warm-up from 0 over `warmup_steps` (as transformers' schedules do). WSD keeps the peak rate
until the last `decay_fraction` of the steps and then decays linearly, so a run can be extended or branched
from a stable-phase checkpoint; with `init_from` the warm-up starts again from a trained model (re-warming,
Ibrahim et al. 2024). `min_lr_ratio` sets where the decay ends. Pure Python: no torch needed to test it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    kind: str  # linear | cosine | wsd | constant_with_warmup
    warmup_steps: int
    total_steps: int
    decay_fraction: float = 0.2
    min_lr_ratio: float = 0.0

    @classmethod
    def from_config(cls, cpt: object, total_steps: int) -> Schedule:
        return cls(
            kind=cpt.lr_scheduler,
            warmup_steps=cpt.warmup_steps,
            total_steps=total_steps,  # type: ignore[attr-defined]
            decay_fraction=cpt.decay_fraction,
            min_lr_ratio=cpt.min_lr_ratio,
        )  # type: ignore[attr-defined]

    @property
    def decay_start(self) -> int:
        """First step of the decay phase (WSD); never before warm-up ends."""
        if self.kind != "wsd":
            return self.warmup_steps
        return max(self.warmup_steps, self.total_steps - round(self.decay_fraction * self.total_steps))


def lr_multiplier(step: int, schedule: Schedule) -> float:
    """Learning rate at optimizer step `step` as a fraction of the peak."""
    s = schedule
    if step < s.warmup_steps:
        return step / max(1, s.warmup_steps)
    if s.kind == "constant_with_warmup":
        return 1.0
    start = s.decay_start
    if step < start:
        return 1.0
    progress = min(1.0, (step - start) / max(1, s.total_steps - start))
    if s.kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif s.kind in ("linear", "wsd"):
        shape = 1.0 - progress
    else:
        raise ValueError(f"unknown lr_scheduler {s.kind!r}")
    return s.min_lr_ratio + (1.0 - s.min_lr_ratio) * shape


def lambda_lr(optimizer: object, schedule: Schedule) -> object:
    """A torch LambdaLR over `lr_multiplier`. A partial (not a closure) keeps the scheduler state_dict small:
    LambdaLR saves only the `__dict__` of non-function lambdas, which is empty here."""
    import functools

    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, functools.partial(lr_multiplier, schedule=schedule))  # type: ignore[arg-type]
