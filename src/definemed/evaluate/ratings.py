"""Statistics over reconciled pairwise battles: win tables, Bradley-Terry scores, bootstrap CIs, LC win-rate.

A battle is one outcome per prompt per unordered model pair, after both judge orders were reconciled
(disagreement already counted as a tie, see `pairwise.reconcile`). Functions take `Battle`s or plain dicts
with the same keys. Everything here is a pure function; nothing runs at import time.

Conventions shared with Arena-Hard-Auto and AlpacaEval 2:
- a tie is half a win for each side. In a logistic likelihood that is the target y = 0.5, which is exactly
  Arena-Hard-Auto's "one win each way with weight 0.5" duplication;
- Bradley-Terry ratings are on the Elo scale: rating = scale * beta / ln(base) + init_rating, so that
  P(i beats j) = 1 / (1 + base ** ((R_j - R_i) / scale)).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import expit

Outcome = Literal["model_a", "model_b", "tie"]
# Score of model_a in a battle: a tie is half a win.
OUTCOME_SCORE = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}
# Only used for bootstrap resamples in which no finite MLE exists (a model never wins, or never loses):
# keeps the fit finite; such a model lands thousands of points away, i.e. at the end of the percentile range.
_SEPARATION_RIDGE = 1e-6


@dataclass(frozen=True)
class Battle:
    """One reconciled outcome. `len_a`/`len_b`: answer lengths (tokens or words, the same unit throughout)."""

    model_a: str
    model_b: str
    winner: Outcome
    prompt_id: str = ""
    len_a: int = 0
    len_b: int = 0

    @classmethod
    def coerce(cls, item: Battle | Mapping[str, Any]) -> Battle:
        """A `Battle` from a dict with the same keys; checks the winner label and that the models differ."""
        b = (
            item
            if isinstance(item, Battle)
            else cls(
                model_a=item["model_a"],
                model_b=item["model_b"],
                winner=item["winner"],
                prompt_id=str(item.get("prompt_id", "")),
                len_a=int(item.get("len_a", 0)),
                len_b=int(item.get("len_b", 0)),
            )
        )
        if b.winner not in OUTCOME_SCORE:
            raise ValueError(f"battle winner must be one of {sorted(OUTCOME_SCORE)}, got {b.winner!r}")
        if b.model_a == b.model_b:
            raise ValueError(f"battle pits {b.model_a!r} against itself")
        return b


def as_battles(battles: Iterable[Battle | Mapping[str, Any]]) -> list[Battle]:
    """Validated `Battle` list; raises on an empty input, since no statistic here is defined on nothing."""
    out = [Battle.coerce(b) for b in battles]
    if not out:
        raise ValueError("no battles given")
    return out


def model_names(battles: list[Battle]) -> list[str]:
    """Models in order of first appearance (deterministic, follows the input order)."""
    return list(dict.fromkeys(m for b in battles for m in (b.model_a, b.model_b)))


# ----------------------------------------------------------------------------------------------- win table
def win_table(battles: Iterable[Battle | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Wins, ties, losses, n and win_rate = (wins + 0.5 ties) / n for every ordered pair that met."""
    counts: dict[tuple[str, str], list[int]] = {}
    for b in as_battles(battles):
        for model, opponent, won in ((b.model_a, b.model_b, "model_a"), (b.model_b, b.model_a, "model_b")):
            c = counts.setdefault((model, opponent), [0, 0, 0])
            c[0 if b.winner == won else 1 if b.winner == "tie" else 2] += 1
    return [
        {
            "model": m,
            "opponent": o,
            "wins": w,
            "ties": t,
            "losses": lo,
            "n": w + t + lo,
            "win_rate": (w + 0.5 * t) / (w + t + lo),
        }
        for (m, o), (w, t, lo) in counts.items()
    ]


def winrate_fold_change(table: list[dict[str, Any]], model_x: str, model_y: str, opponent: str) -> float | None:
    """win_rate(x vs opponent) / win_rate(y vs opponent), e.g. adapted vs original model against a larger one
    (the paper's "about 3.5-fold"). None when either pair is missing from `table` or y's win-rate is 0."""
    rates = {(r["model"], r["opponent"]): r["win_rate"] for r in table}
    x, y = rates.get((model_x, opponent)), rates.get((model_y, opponent))
    if x is None or not y:
        return None
    return x / y


# -------------------------------------------------------------------------------------- logistic solver
def _newton_step(
    beta: np.ndarray, X: np.ndarray, y: np.ndarray, W: np.ndarray, Q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Newton direction (R, P) and decrement g'H^-1 g (R,) of the penalised weighted logistic loss."""
    eta = beta @ X.T
    # Written without (p - y) so that nothing cancels when |eta| is large (separated data).
    resid = (1 - y) * expit(eta) - y * expit(-eta)
    grad = (W * resid) @ X + beta @ Q
    # The tiny jitter keeps a flat direction (an all-zero feature) solvable; it cannot move the optimum.
    hess = np.einsum("rc,cp,cq->rpq", W * expit(eta) * expit(-eta), X, X) + Q + 1e-12 * np.eye(len(Q))
    step = np.linalg.solve(hess, grad[..., None])[..., 0]
    return step, np.einsum("rp,rp->r", grad, step)


def _objective(b: np.ndarray, X: np.ndarray, y: np.ndarray, W: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Penalised loss at T candidate points per row: b (R, T, P) -> (R, T)."""
    eta = b @ X.T
    loss = (W[:, None, :] * (np.logaddexp(0.0, eta) - y * eta)).sum(-1)
    return loss + 0.5 * np.einsum("rtp,pq,rtq->rt", b, Q, b)


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    penalty: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-14,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact weighted logistic MLE for many weight vectors at once (damped Newton, vectorised over rows).

    Minimises  sum_c w_rc [log(1 + e^{x_c.b}) - y_c x_c.b] + 0.5 b'Qb  for each row r of `weights` (R, C);
    `X` (C, P) and targets `y` (C,) in [0, 1] are shared. Returns (coefficients (R, P), converged (R,)).
    A row finishes with one full Newton step once its decrement g'H^-1g is below tol * (1 + |loss|): the
    error is then squared once more, far below what any rating reports. converged is False for rows that ran
    out of iterations or stalled, typically because the MLE lies at infinity.
    """
    X, y = np.asarray(X, float), np.asarray(y, float)
    W = np.atleast_2d(np.asarray(weights, float))
    Q = np.zeros((X.shape[1],) * 2) if penalty is None else np.asarray(penalty, float)
    beta = np.zeros((W.shape[0], X.shape[1]))
    active, converged = np.ones(W.shape[0], bool), np.zeros(W.shape[0], bool)
    steps = 0.5 ** np.arange(40)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if not len(rows):
            break
        b, w = beta[rows], W[rows]
        step, decrement = _newton_step(b, X, y, w, Q)
        # Backtracking (Armijo) line search, all candidate step sizes evaluated in one go.
        f_old = _objective(b[:, None, :], X, y, w, Q)
        f_new = _objective(b[:, None, :] - steps[None, :, None] * step[:, None, :], X, y, w, Q)
        ok = f_new <= f_old - 1e-4 * steps[None, :] * decrement[:, None]
        done = decrement <= tol * (1 + np.abs(f_old[:, 0]))
        t = np.where(done, 1.0, np.where(ok.any(1), steps[ok.argmax(1)], 0.0))
        beta[rows] = b - t[:, None] * step
        converged[rows] = done
        active[rows] = ~done & ok.any(1)
    return beta, converged


# -------------------------------------------------------------------------------------- Bradley-Terry
def _bt_cells(battles: list[Battle], models: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (model_a, model_b, outcome) cells: design rows (+1 a, -1 b), targets, and each battle's cell."""
    idx = {m: i for i, m in enumerate(models)}
    keys = np.array([(idx[b.model_a], idx[b.model_b], 2 * OUTCOME_SCORE[b.winner]) for b in battles], int)
    cells, inverse = np.unique(keys, axis=0, return_inverse=True)
    X = np.zeros((len(cells), len(models)))
    X[np.arange(len(cells)), cells[:, 0]] = 1.0
    X[np.arange(len(cells)), cells[:, 1]] = -1.0
    return X, cells[:, 2] / 2.0, inverse.ravel()


def _finite_mle(X: np.ndarray, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per weight row: does a finite BT MLE exist? (Zermelo/Ford: the graph "i won or tied against j" must be
    strongly connected.) Checked by boolean matrix squaring, batched over rows."""
    M = X.shape[1]
    a, b = X.argmax(1), X.argmin(1)
    edges = np.zeros((len(y), M, M))
    edges[y > 0, a[y > 0], b[y > 0]] = 1.0  # a scored against b
    edges[y < 1, b[y < 1], a[y < 1]] = 1.0  # b scored against a
    reach = (np.einsum("rc,cij->rij", (W > 0).astype(float), edges) + np.eye(M)) > 0
    for _ in range(int(np.ceil(np.log2(max(M, 2))))):
        reach = (reach.astype(float) @ reach.astype(float)) > 0
    return reach.all(axis=(1, 2))


def _bt_penalty(M: int, ridge: float) -> np.ndarray:
    """ridge * I plus 11'. The latter only pins sum(beta) = 0, the one direction the likelihood cannot see,
    so the unregularised optimum is unique and still the exact MLE."""
    return ridge * np.eye(M) + np.ones((M, M))


def _fit_bt(X: np.ndarray, y: np.ndarray, W: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """Centred BT coefficients (natural log-odds units), one row per weight row; rows grouped by ridge."""
    beta = np.empty((W.shape[0], X.shape[1]))
    for lam in np.unique(ridge):
        rows = ridge == lam
        beta[rows], _ = fit_logistic(X, y, W[rows], _bt_penalty(X.shape[1], float(lam)))
    return beta


def _to_ratings(
    beta: np.ndarray, models: list[str], anchor: str | None, scale: float, base: float, init_rating: float
) -> np.ndarray:
    ratings = scale * beta / np.log(base) + init_rating
    if anchor is not None:
        if anchor not in models:
            raise ValueError(f"anchor {anchor!r} is not among the rated models {models}")
        ratings += init_rating - ratings[..., [models.index(anchor)]]
    return ratings


def bradley_terry(
    battles: Iterable[Battle | Mapping[str, Any]],
    anchor: str | None = None,
    scale: float = 400,
    base: float = 10,
    init_rating: float = 1000,
    ridge: float = 0.0,
) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale (Arena-Hard-Auto's `compute_mle_elo`).

    Ties count as half a win for each side. Without `anchor` the ratings average `init_rating`; with one,
    the anchor sits exactly at `init_rating`. `ridge` (default 0: the exact MLE) adds 0.5*ridge*|beta|^2.
    Raises when no finite MLE exists (some group of models never wins or ties against the rest).
    """
    battles = as_battles(battles)
    models = model_names(battles)
    X, y, inverse = _bt_cells(battles, models)
    W = np.bincount(inverse, minlength=len(y))[None, :].astype(float)
    if ridge == 0 and not _finite_mle(X, y, W)[0]:
        raise ValueError(
            "no finite Bradley-Terry MLE: some models never win or tie against the others "
            "(or the comparison graph is disconnected); add battles or pass ridge > 0"
        )
    beta = _fit_bt(X, y, W, np.array([ridge]))
    ratings = _to_ratings(beta, models, anchor, scale, base, init_rating)[0]
    return dict(zip(models, ratings.tolist(), strict=True))


def bootstrap_bradley_terry(
    battles: Iterable[Battle | Mapping[str, Any]],
    n_rounds: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    anchor: str | None = None,
    scale: float = 400,
    base: float = 10,
    init_rating: float = 1000,
    ridge: float = 0.0,
) -> dict[str, dict[str, float]]:
    """Point BT ratings with percentile bootstrap intervals (battles resampled with replacement).

    Returns {model: {"score", "lower", "upper", "separated_share"}}; score is the fit on all battles.
    Resamples have at most (#pairs x 3) distinct cells, so every round is a vector of cell counts and all
    rounds are fitted together. Rounds without a finite MLE get a negligible ridge; `separated_share`
    reports how many there were (if it approaches (1 - ci) / 2, the matching bound is effectively infinite).
    """
    battles = as_battles(battles)
    models = model_names(battles)
    score = bradley_terry(battles, anchor, scale, base, init_rating, ridge)
    X, y, inverse = _bt_cells(battles, models)
    rng = np.random.default_rng(seed)
    draws = inverse[rng.integers(0, len(inverse), size=(n_rounds, len(inverse)))]
    W = np.zeros((n_rounds, len(y)))
    np.add.at(W, (np.arange(n_rounds)[:, None], draws), 1.0)
    finite = _finite_mle(X, y, W) if ridge == 0 else np.ones(n_rounds, bool)
    ridges = np.where(finite, ridge, max(ridge, _SEPARATION_RIDGE))
    ratings = _to_ratings(_fit_bt(X, y, W, ridges), models, anchor, scale, base, init_rating)
    lower, upper = np.quantile(ratings, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return {
        m: {
            "score": score[m],
            "lower": float(lower[i]),
            "upper": float(upper[i]),
            "separated_share": float(1 - finite.mean()),
        }
        for i, m in enumerate(models)
    }


# --------------------------------------------------------------------------------- length-controlled
def length_controlled_winrate(
    battles: Iterable[Battle | Mapping[str, Any]], model: str, baseline: str, length_ridge: float = 0.0
) -> dict[str, Any]:
    """AlpacaEval-2-style length-controlled win-rate of `model` against `baseline`.

    Fits P(model beats baseline) = sigmoid(theta + phi * tanh(d / std(d))), d = len_model - len_baseline,
    ties as y = 0.5, then reports sigmoid(theta): the win-rate predicted for equal lengths.
    Simplification: AlpacaEval's GLM also has per-instruction difficulty terms (and fits many models against
    one baseline); with one model pair and no instruction term, theta is the model-minus-baseline bias and
    LC is one number rather than an average over instructions. Equal lengths everywhere give LC == raw.
    `separated` flags a fit whose MLE is at infinity (e.g. the model wins exactly when it is longer); LC is then
    arbitrary, and `length_ridge` > 0 (an L2 penalty on phi only, as AlpacaEval regularises its GLM) fixes it.
    """
    pair = [b for b in as_battles(battles) if {b.model_a, b.model_b} == {model, baseline}]
    if not pair:
        raise ValueError(f"no battles between {model!r} and {baseline!r}")
    flip = np.array([b.model_a != model for b in pair])
    y_a = np.array([OUTCOME_SCORE[b.winner] for b in pair])
    d_a = np.array([b.len_a - b.len_b for b in pair], float)
    y, d = np.where(flip, 1 - y_a, y_a), np.where(flip, -d_a, d_a)
    std = d.std()
    z = np.tanh(d / std) if std > 0 else np.zeros_like(d)
    coef, converged = fit_logistic(
        np.column_stack([np.ones_like(z), z]), y, np.ones((1, len(y))), penalty=np.diag([0.0, length_ridge])
    )
    theta, phi = coef[0]
    # |coef| > 20 means fitted probabilities within 2e-9 of 0/1: the likelihood was still climbing to infinity.
    return {
        "raw": float(y.mean()),
        "lc": float(expit(theta)),
        "length_coef": float(phi),
        "n": len(y),
        "separated": bool(np.abs(coef).max() > 20 or not converged[0]),
    }
