"""The tracker's Hungarian assignment against scipy's on random and tied matrices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment as scipy_lsa

from veil.track.assignment import linear_sum_assignment


@pytest.mark.parametrize("seed", range(5))
def test_same_total_cost_as_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n, m = rng.integers(0, 9, 2)
        cost = rng.random((n, m))
        if rng.random() < 0.5:
            cost = np.round(cost * 3)  # many ties
        cost[rng.random((n, m)) < 0.3] = 1e6  # forbidden pairs, as the tracker marks them
        rows, cols = linear_sum_assignment(cost)
        ref_rows, ref_cols = scipy_lsa(cost)
        assert len(rows) == len(ref_rows) == min(n, m)
        assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum())
        assert (np.diff(rows) > 0).all()
        assert len(set(cols.tolist())) == len(cols)


def test_known_matrix() -> None:
    cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    rows, cols = linear_sum_assignment(cost)
    assert rows.tolist() == [0, 1, 2]
    assert cols.tolist() == [1, 0, 2]  # 1 + 2 + 2 = 5


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (3, 0)])
def test_empty(shape: tuple[int, int]) -> None:
    rows, cols = linear_sum_assignment(np.zeros(shape))
    assert rows.shape == cols.shape == (0,)


def test_bad_costs_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(np.array([[np.inf, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        linear_sum_assignment(np.zeros(3))
