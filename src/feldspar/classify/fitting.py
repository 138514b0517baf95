"""Fitting softmax classifiers on feature vectors in plain numpy: multinomial logistic
regression by L-BFGS, a one-hidden-layer MLP by Adam, and temperature scaling.

No scikit-learn or torch at run time: the weights are a few numpy arrays, trained in
seconds on ten thousand embeddings and stored as an .npz without pickle.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for any logits.

    Example:
        >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])).round(3).tolist()
        [[0.5, 0.5], [1.0, 0.0]]
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of `y` and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(len(y))
    loss = float((log_z - shifted[rows, y]).mean())
    grad = np.exp(shifted - log_z[:, None])
    grad[rows, y] -= 1.0
    return loss, grad / len(y)


def lbfgs(objective: Objective, x0: np.ndarray, *, max_iter: int = 500, memory: int = 10,
          tol: float = 1e-6) -> np.ndarray:
    """Minimise a smooth function from `x0` with L-BFGS and a backtracking (Armijo) line
    search; stops when the largest gradient entry is below `tol`.

    Example:
        >>> target = np.array([1.0, -2.0, 3.0])
        >>> x = lbfgs(lambda x: (float(((x - target) ** 2).sum()), 2 * (x - target)),
        ...           np.zeros(3))
        >>> np.allclose(x, target, atol=1e-5)
        True
    """
    x = x0.astype(np.float64).copy()
    fx, g = objective(x)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(max_iter):
        if np.abs(g).max() < tol:
            break
        direction = -_two_loop(g, steps)
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: start the memory afresh
            steps.clear()
            direction, slope = -g, -float(g @ g)
        step = 1.0 if steps else min(1.0, 1.0 / max(float(np.abs(g).sum()), 1e-12))
        while True:
            x_new = x + step * direction
            f_new, g_new = objective(x_new)
            if f_new <= fx + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-12:
                return x
        s, change = x_new - x, g_new - g
        curvature = float(s @ change)
        if curvature > 1e-12:
            steps.append((s, change, 1.0 / curvature))
            del steps[:-memory]
        x, fx, g = x_new, f_new, g_new
    return x


def _two_loop(g: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray, float]]
              ) -> np.ndarray:
    q = g.copy()
    alphas = []
    for s, change, rho in reversed(steps):
        alpha = rho * float(s @ q)
        q -= alpha * change
        alphas.append(alpha)
    if steps:
        s, change, _ = steps[-1]
        q *= float(s @ change) / float(change @ change)
    for (s, change, rho), alpha in zip(steps, reversed(alphas), strict=True):
        q += s * (alpha - rho * float(change @ q))
    return q


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float,
                 max_iter: int = 500, start: dict[str, np.ndarray] | None = None
                 ) -> dict[str, np.ndarray]:
    """Multinomial logistic regression: minimises the mean cross-entropy plus
    `l2`/2 times the squared weights (not the bias). Returns {"w": (d, k), "b": (k,)}.
    The problem is convex: `start` (an earlier fit) only makes it converge sooner.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.concatenate([rng.normal(-2, 1, (50, 2)), rng.normal(2, 1, (50, 2))])
        >>> y = np.repeat([0, 1], 50)
        >>> params = fit_logistic(x, y, 2, l2=0.01)
        >>> float((logits(params, x).argmax(1) == y).mean()) > 0.95
        True
    """
    x64 = x.astype(np.float64)
    d = x.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * n_classes].reshape(d, n_classes), theta[d * n_classes :]
        loss, grad = cross_entropy(x64 @ w + b, y)
        gw = x64.T @ grad + l2 * w
        return loss + 0.5 * l2 * float((w * w).sum()), np.concatenate([gw.ravel(),
                                                                       grad.sum(0)])

    theta0 = (np.zeros(d * n_classes + n_classes) if start is None
              else np.concatenate([start["w"].ravel(), start["b"]]))
    theta = lbfgs(objective, theta0, max_iter=max_iter)
    return {"w": theta[: d * n_classes].reshape(d, n_classes).astype(np.float32),
            "b": theta[d * n_classes :].astype(np.float32)}


def fit_mlp(x: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float, hidden: int = 512,
            epochs: int = 60, batch: int = 64, rate: float = 1e-3, seed: int = 0
            ) -> dict[str, np.ndarray]:
    """A one-hidden-layer ReLU network trained by Adam on mini-batches, with weight decay
    `l2`. Returns {"w1", "b1", "w", "b"}."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    params = {"w1": rng.normal(0, np.sqrt(2 / d), (d, hidden)).astype(np.float32),
              "b1": np.zeros(hidden, np.float32),
              "w": rng.normal(0, np.sqrt(1 / hidden), (hidden, n_classes)).astype(np.float32),
              "b": np.zeros(n_classes, np.float32)}
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            rows = order[start : start + batch]
            xb = x[rows]
            h = np.maximum(xb @ params["w1"] + params["b1"], 0)
            _, grad = cross_entropy(h @ params["w"] + params["b"], y[rows])
            grad = grad.astype(np.float32)
            dh = (grad @ params["w"].T) * (h > 0)
            grads = {"w": h.T @ grad + l2 * params["w"], "b": grad.sum(0),
                     "w1": xb.T @ dh + l2 * params["w1"], "b1": dh.sum(0)}
            t += 1
            for key, gradient in grads.items():
                m, v = moments[key]
                m *= 0.9
                m += 0.1 * gradient
                v *= 0.999
                v += 0.001 * gradient * gradient
                step = rate * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
                params[key] -= (step * m / (np.sqrt(v) + 1e-8)).astype(np.float32)
    return params


def logits(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The raw class scores of a fitted model (logistic or MLP) for rows of `x`."""
    if "w1" in params:
        x = np.maximum(x @ params["w1"] + params["b1"], 0)
    return x @ params["w"] + params["b"]  # type: ignore[no-any-return]


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The temperature T that makes softmax(scores / T) best calibrated on labelled
    scores (the negative log-likelihood, minimised over T in [0.05, 20] by golden-section
    search on log T).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> true = rng.normal(0, 2, (5000, 3))  # calibrated scores, and labels drawn from them
        >>> y = np.array([rng.choice(3, p=p) for p in softmax(true)])
        >>> round(fit_temperature(true * 5, y))  # a model 5 times overconfident
        5
    """
    def nll(log_t: float) -> float:
        return cross_entropy(scores / np.exp(log_t), y)[0]

    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return float(np.exp((low + high) / 2))


def stratified_folds(y: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """A fold number in [0, k) for each row, each class spread evenly over the folds.

    Example:
        >>> stratified_folds(np.array([0, 0, 0, 0, 1, 1]), 2).tolist()
        [1, 0, 0, 1, 1, 0]
    """
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    offset = 0
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        folds[rows] = (np.arange(len(rows)) + offset) % k
        offset += len(rows)
    return folds
