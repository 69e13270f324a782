"""Intervals for success rates: Wilson (one proportion) and Newcombe (difference of two)."""

from __future__ import annotations

import pytest

from app.campaigns.stats import Z95, newcombe_difference, wilson_interval


def test_wilson_hand_computed() -> None:
    # 5/10: centre (5 + z^2/2) / (10 + z^2) = 0.5; half-width z / (10 + z^2) * sqrt(2.5 + z^2/4)
    z2 = Z95**2
    half = Z95 / (10 + z2) * (2.5 + z2 / 4) ** 0.5
    assert half == pytest.approx(0.263407, abs=1e-6)
    assert wilson_interval(5, 10) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)
    # 0/20: lower bound 0, upper z^2 / (20 + z^2)
    assert wilson_interval(0, 20) == pytest.approx((0.0, z2 / (20 + z2)), abs=1e-12)
    assert wilson_interval(20, 20) == pytest.approx((20 / (20 + z2), 1.0), abs=1e-12)


@pytest.mark.parametrize(("k", "n", "expected"), [
    # Newcombe (1998), Stat. Med. 17:857, Table I, method 3 (score interval without correction)
    (81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)), (0, 20, (0.0, 0.1611)), (1, 29, (0.0061, 0.1718)),
])
def test_wilson_published(k: int, n: int, expected: tuple[float, float]) -> None:
    assert wilson_interval(k, n) == pytest.approx(expected, abs=5e-5)


def test_wilson_edges_and_errors() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k in range(0, 8):
        lo, hi = wilson_interval(k, 7)
        assert 0.0 <= lo <= k / 7 <= hi <= 1.0
    with pytest.raises(ValueError, match="0 <= successes <= trials"):
        wilson_interval(4, 3)
    with pytest.raises(ValueError, match="0 <= successes <= trials"):
        wilson_interval(-1, 3)


@pytest.mark.parametrize(("counts", "expected"), [
    # Newcombe (1998), Stat. Med. 17:873, Table II, method 10 (hybrid score)
    ((56, 70, 48, 80), (0.0524, 0.3339)), ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)), ((0, 10, 0, 20), (-0.1611, 0.2775)), ((10, 10, 0, 20), (0.6791, 1.0)),
])
def test_newcombe_published(counts: tuple[int, int, int, int], expected: tuple[float, float]) -> None:
    assert newcombe_difference(*counts) == pytest.approx(expected, abs=5e-5)


def test_newcombe_from_wilson_bounds() -> None:
    # 19/20 vs 20/20: d = -0.05; lo = d - sqrt((p1 - l1)^2 + (u2 - p2)^2), u2 = p2 = 1
    l1, u1 = wilson_interval(19, 20)
    l2, _ = wilson_interval(20, 20)
    lo, hi = newcombe_difference(19, 20, 20, 20)
    assert lo == pytest.approx(-0.05 - (0.95 - l1), abs=1e-12)
    assert hi == pytest.approx(-0.05 + ((u1 - 0.95) ** 2 + (1 - l2) ** 2) ** 0.5, abs=1e-12)
    # antisymmetric: swapping the groups mirrors the interval
    assert newcombe_difference(20, 20, 19, 20) == pytest.approx((-hi, -lo), abs=1e-12)
    with pytest.raises(ValueError, match="trials > 0"):
        newcombe_difference(0, 0, 1, 2)
