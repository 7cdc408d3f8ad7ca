from __future__ import annotations

import pytest

from definemed.train.schedule import Schedule, lambda_lr, lr_multiplier


def _values(kind: str, **kw: float) -> dict[int, float]:
    s = Schedule(kind=kind, warmup_steps=10, total_steps=100, **kw)
    return {step: round(lr_multiplier(step, s), 6) for step in (0, 5, 10, 50, 79, 80, 90, 99, 100)}


def test_wsd_warms_up_holds_then_decays_over_the_last_fraction() -> None:
    v = _values("wsd", decay_fraction=0.2)
    assert v == {0: 0.0, 5: 0.5, 10: 1.0, 50: 1.0, 79: 1.0, 80: 1.0, 90: 0.5, 99: 0.05, 100: 0.0}
    floor = _values("wsd", decay_fraction=0.2, min_lr_ratio=0.1)
    assert floor[90] == pytest.approx(0.55) and floor[100] == pytest.approx(0.1) and floor[50] == 1.0
    # A decay longer than the run after warm-up starts right after warm-up instead of during it.
    assert Schedule("wsd", 10, 100, decay_fraction=1.0).decay_start == 10


def test_linear_and_cosine_decay_from_the_end_of_warmup() -> None:
    lin, cos = _values("linear"), _values("cosine")
    assert lin[10] == 1.0 and lin[50] == pytest.approx(1 - 40 / 90, abs=1e-6)
    assert lin[100] == 0.0 and cos[10] == 1.0 and cos[100] == 0.0
    assert cos[50] > lin[50]  # cosine stays higher in the first half of the decay
    assert _values("constant_with_warmup")[100] == 1.0


def test_lambda_lr_drives_the_optimizer_and_survives_a_state_dict_round_trip() -> None:
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-3)
    sched = lambda_lr(opt, Schedule("wsd", 2, 10, decay_fraction=0.5))
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0, 5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 8e-4, 6e-4, 4e-4, 2e-4])
    state = sched.state_dict()
    opt2 = torch.optim.AdamW([param], lr=1e-3)
    again = lambda_lr(opt2, Schedule("wsd", 2, 10, decay_fraction=0.5))
    again.load_state_dict(state)
    assert again.get_last_lr() == pytest.approx(sched.get_last_lr())
