"""Sigma-clipped median and standard deviation of many rows at once, as astropy computes them.

The asinh stretch needs each image's background and noise: the median and standard deviation
that astropy's ``sigma_clipped_stats(data, sigma=3, maxiters=5, stdfunc="mad_std", axis=1)``
returns (the MAD sets the clipping bounds; the standard deviation returned is that of the
pixels kept). astropy finds every median of its clipping loop by selection on a buffer it
shrinks; that costs about 0.2 ms per 64 x 64 band. Here each row is sorted once, and two facts
make the loop index arithmetic:

- a set clipped by value bounds is a contiguous run ``[lo, hi)`` of the sorted row, so its
  median is one or two look-ups and its new ends are binary searches;
- the absolute deviations from the median over such a run are two monotone sequences, so their
  k-th smallest is found by a binary search (the k+1 values nearest the median form a
  contiguous window of the run).

All rows advance together (vectorised over bands and over a batch of images), so the cost per
image is a sort and a few dozen array operations shared by the batch. With numpy the numbers
are astropy's bit for bit: the clipping loop in double precision like astropy's C code, the
final median a look-up, the final standard deviation the operations of numpy's ``nanstd`` on
the kept pixels in their original order (float32 sums depend on the order). The few
operations the algorithm needs come from a backend, so it also runs on torch tensors on a GPU,
where the standard deviation agrees to float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["clipped_median_and_std", "Backend", "NUMPY"]

MAD_TO_STD = 1.482602218505602
"""astropy's factor from the median absolute deviation to the standard deviation."""


@dataclass(frozen=True)
class Backend:
    """The array operations the algorithm uses, for one array library."""

    sort: Callable[[Any], Any]
    """Sort along the last axis, NaN last."""
    gather: Callable[[Any, Any, Any], Any]
    """``values[rows, index]``."""
    arange: Callable[[int, Any], Any]
    """``0, 1, ..., n - 1`` as int64, beside the given array."""
    float64: Callable[[Any], Any]
    float32: Callable[[Any], Any]
    isnan: Callable[[Any], Any]
    where: Callable[[Any, Any, Any], Any]
    minimum: Callable[[Any, Any], Any]
    maximum: Callable[[Any, Any], Any]
    concat: Callable[[list], Any]
    any: Callable[[Any], bool]
    nextafter: Callable[[Any, float], Any]
    """The next float32 after each value towards +inf or -inf."""
    kept_std: Callable[[Any, Any], Any]
    """Standard deviation along the last axis of the values where the mask is True
    (population, ddof 0; NaN where none is kept)."""


def _numpy_kept_std(rows: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """``np.nanstd`` of ``rows`` with the values outside ``kept`` as NaN, bit for bit: the
    operations of numpy's ``nanvar`` in its order, without the round trip through NaN."""
    values = np.where(kept, rows, np.float32(0))
    count = kept.sum(axis=-1, dtype=np.intp, keepdims=True)
    mean = values.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(mean, count, out=mean, casting="unsafe")
        np.subtract(values, mean, out=values)
        np.copyto(values, 0, where=~kept)
        np.multiply(values, values, out=values)
        variance = values.sum(axis=-1)
        np.divide(variance, count[..., 0], out=variance, casting="unsafe")
    variance[count[..., 0] <= 0] = np.nan
    return np.sqrt(variance, out=variance)


NUMPY = Backend(
    sort=lambda x: np.sort(x, axis=-1),
    gather=lambda x, rows, i: x[rows, i], arange=lambda n, like: np.arange(n, dtype=np.int64),
    float64=lambda x: x.astype(np.float64), float32=lambda x: x.astype(np.float32),
    isnan=np.isnan,
    where=np.where, minimum=np.minimum, maximum=np.maximum, concat=np.concatenate,
    any=lambda x: bool(x.any()), nextafter=lambda x, to: np.nextafter(x, np.float32(to)),
    kept_std=_numpy_kept_std)


def _first_true(xp: Backend, lo, hi, predicate):
    """Per query, the first index in ``[lo, hi)`` where the monotone ``predicate(index)``
    holds (``hi`` where it never does); all queries searched in lock-step."""
    while xp.any(lo < hi):
        searching = lo < hi
        middle = xp.where(searching, (lo + hi) // 2, lo * 0)  # finished ones look at index 0
        holds = predicate(middle) & searching
        hi = xp.where(holds, middle, hi)
        lo = xp.where(holds | ~searching, lo, middle + 1)
    return lo


def _median_of_run(xp: Backend, s, rows, lo, count, cast):
    """Median of each run ``[lo, lo + count)``: the middle value, or the mean of the two
    middle values computed in ``cast``'s precision."""
    a = cast(xp.gather(s, rows, lo + (count - 1) // 2))
    b = cast(xp.gather(s, rows, lo + count // 2))
    return (a + b) / 2


def _mad_of_run(xp: Backend, s, rows, lo, count, median, cast):
    """Median absolute deviation from ``median`` over each run, differences in ``cast``'s
    precision. The k+1 values nearest the median are a window ``[a, a + k]`` of the run; its
    far end gives the k-th smallest deviation, and the best window starts where the right
    end's deviation first reaches the left end's. Both middle order statistics (the lower is
    needed for even counts) are searched together."""
    n_rows = count.shape[0]
    ks = xp.concat([count // 2, xp.maximum(count // 2 - 1, 0)])
    rows2, lo2, centre = xp.concat([rows, rows]), xp.concat([lo, lo]), xp.concat([median, median])
    last = xp.concat([lo + count, lo + count]) - 1 - ks  # the last window start

    def left(a):
        return centre - cast(xp.gather(s, rows2, a))

    def right(a):
        return cast(xp.gather(s, rows2, a + ks)) - centre

    start = _first_true(xp, lo2, last + 1, lambda a: right(a) >= left(a))
    here, before = xp.minimum(start, last), xp.maximum(start - 1, lo2)
    deviation = xp.minimum(xp.maximum(left(here), right(here)),
                           xp.maximum(left(before), right(before)))
    upper, lower = deviation[:n_rows], deviation[n_rows:]
    return xp.where(count % 2 == 1, upper, (lower + upper) / 2)


def _counter(xp: Backend, s, index):
    """For sorted rows ``s``: ``count(lows, highs)``, per row the number of values below
    its ``lows`` and the number at most its ``highs`` (float32; NaN counts as above all), in
    one lock-step search over both."""
    n = s.shape[1]
    rows = xp.concat([index, index])

    def count(lows, highs):
        bounds = xp.concat([lows, highs])
        strict = xp.concat([index * 0 + 1, index * 0]) == 1  # below the low; above the high

        def beyond(i):
            value = xp.gather(s, rows, i)
            return xp.isnan(value) | xp.where(strict, value >= bounds, value > bounds)

        found = _first_true(xp, rows * 0, rows * 0 + n, beyond)
        return found[:index.shape[0]], found[index.shape[0]:]

    return count


def _float32_within(xp: Backend, lower, upper):
    """The smallest float32 >= ``lower`` and the largest float32 <= ``upper``: comparing
    float32 pixels with them is comparing their exact values with the float64 bounds."""
    low, high = xp.float32(lower), xp.float32(upper)
    low = xp.where(xp.float64(low) < lower, xp.nextafter(low, float("inf")), low)
    high = xp.where(xp.float64(high) > upper, xp.nextafter(high, -float("inf")), high)
    return low, high


def clipped_median_and_std(rows, *, sigma: float = 3.0, maxiters: int = 5,
                           xp: Backend = NUMPY):
    """Sigma-clipped median and standard deviation of each row of float32 ``rows``
    (``(n_rows, n)``; NaN and inf pixels are ignored), as float32: what
    ``astropy.stats.sigma_clipped_stats(rows, sigma=sigma, maxiters=maxiters,
    stdfunc="mad_std", axis=1)`` returns as median and standard deviation. Rows without a
    finite value give NaN."""
    s = xp.sort(rows)
    index = xp.arange(s.shape[0], s)
    bounds_at = _counter(xp, s, index)
    zero = xp.float32(index * 0)
    infinity = zero + float("inf")
    below, at_most = bounds_at(xp.nextafter(-infinity, 0.0), xp.nextafter(infinity, 0.0))
    first, end = below, at_most  # the finite values: above -inf and below +inf
    last = s.shape[1] - 1
    lo, hi = xp.minimum(first, last), end  # a row without finite values stays in bounds
    lower = upper = xp.float64(zero)
    active = hi > lo

    for _ in range(maxiters):  # astropy's C loop, in double precision
        count = xp.maximum(hi - lo, 1)
        median = _median_of_run(xp, s, index, lo, count, xp.float64)
        std = _mad_of_run(xp, s, index, lo, count, median, xp.float64) * MAD_TO_STD
        lower = xp.where(active, median - sigma * std, lower)
        upper = xp.where(active, median + sigma * std, upper)
        below, at_most = bounds_at(*_float32_within(xp, lower, upper))
        new_lo, new_hi = xp.maximum(lo, below), xp.minimum(hi, at_most)
        changed = (new_hi - new_lo != hi - lo) & (new_hi > new_lo)
        active = active & changed
        lo, hi = xp.where(active, new_lo, lo), xp.where(active, new_hi, hi)
        if not xp.any(active):
            break

    # the pixels kept: every finite value within the last bounds (a run of the sorted row)
    low32, high32 = _float32_within(xp, lower, upper)
    below, at_most = bounds_at(low32, high32)
    lo, hi = xp.maximum(below, first), xp.minimum(at_most, end)
    empty = hi <= lo
    lo = xp.minimum(lo, last)
    count = xp.maximum(hi - lo, 1)
    median = _median_of_run(xp, s, index, lo, count, xp.float32)
    std = xp.kept_std(rows, (rows >= low32[:, None]) & (rows <= high32[:, None]))
    nan = zero + float("nan")
    return xp.where(empty, nan, median), xp.where(empty, nan, std)
