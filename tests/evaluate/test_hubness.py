"""Hubness: the share of outputs whose nearest original is one of the 3 most frequent."""

from __future__ import annotations

import numpy as np
import pytest

from veil.evaluate.identity import hubness
from veil.evaluate.privacy import _leakage, _leakage_dict


def test_hubness_on_a_constructed_example() -> None:
    originals = np.eye(6) * 10  # six people far apart
    # outputs 0-3 sit on original 0, 4 on original 1, 5 on original 5:
    # nearest counts {0: 4, 1: 1, 5: 1} -> the 3 hubs hold all 6 outputs
    anonymized = originals[[0, 0, 0, 0, 1, 5]] + 0.1
    assert hubness(anonymized, originals) == pytest.approx(1.0)
    assert hubness(anonymized, originals, top=1) == pytest.approx(4 / 6)
    # every output nearest to its own original: the 3 hubs hold 3 of 6
    assert hubness(originals + 0.1, originals) == pytest.approx(0.5)
    assert np.isnan(hubness(np.zeros((0, 6)), np.zeros((0, 6))))


def test_privacy_rows_report_hubness_and_its_even_spread() -> None:
    originals = np.eye(6) * 10
    row = _leakage("none", originals[[2, 2, 2, 2, 2, 2]] + 0.1, originals, None)
    assert row.hubness == pytest.approx(1.0)
    d = _leakage_dict(row)
    assert d["hubness_top3"] == pytest.approx(1.0) and d["hubness_chance"] == pytest.approx(0.5)
