"""Confidence intervals for success rates: pure functions on counts.

Wilson's score interval for one proportion, and Newcombe's hybrid score interval (his method 10,
built from two Wilson intervals) for the difference of two independent proportions — the
interval behind "within 3 points of oracle". Both stay inside [0, 1] (resp. [-1, 1]) and behave
at 0 and n successes, where the textbook normal interval collapses.

References: E. B. Wilson (1927), JASA 22:209; R. G. Newcombe (1998), Stat. Med. 17:873
(one proportion) and 17:2635 (difference of two proportions).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95 % standard-normal quantile, Phi^-1(0.975)


def _check(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"expected 0 <= successes <= trials, found {k} of {n}")


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Args:
        k: Successes.
        n: Trials (0 gives the uninformative ``(0.0, 1.0)``).
        z: Standard-normal quantile (default: 95 % two-sided).

    Returns:
        ``(lo, hi)`` with ``0 <= lo <= k/n <= hi <= 1``.

    Raises:
        ValueError: ``k`` outside ``[0, n]``.
    """
    _check(k, n)
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At k = 0 or k = n the bound equals p exactly; rounding must not push it past p.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``p1 - p2`` for two independent proportions.

    Args:
        k1: Successes of the first group (e.g. ``drl_gan_vs``). n1: Its trials (> 0).
        k2: Successes of the second group (e.g. ``oracle``). n2: Its trials (> 0).
        z: Standard-normal quantile (default: 95 % two-sided).

    Returns:
        ``(lo, hi)`` bounding ``k1/n1 - k2/n2``, inside ``[-1, 1]``.

    Raises:
        ValueError: A count outside its range, or a group with no trials.
    """
    _check(k1, n1)
    _check(k2, n2)
    if n1 == 0 or n2 == 0:
        raise ValueError(f"expected trials > 0 in both groups, found {n1} and {n2}")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lo), min(1.0, hi)
