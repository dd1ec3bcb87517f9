import numpy as np
import pytest

from robot_rl.eval.stats import bootstrap_ci, iqm, iqm_band, success_rate_ci, summarize_runs


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([5.0], 5.0),
        ([1.0, 3.0], 2.0),
        ([1.0, 2.0, 9.0], 4.0),  # trim_mean(x, 0.25) cuts int(0.75) = 0 values: the plain mean
        ([1.0, 2.0, 3.0, 4.0], 2.5),
        ([4.0, 1.0, 3.0, 2.0], 2.5),
        ([1.0, 2.0, 3.0, 4.0, 100.0], 3.0),
        ([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0], 3.5),
    ],
)
def test_iqm_hand_cases(x: list[float], expected: float) -> None:
    assert iqm(x) == pytest.approx(expected)


def _trim_mean_reference(a: np.ndarray) -> float:
    """scipy.stats.trim_mean(a, 0.25) written out, for when scipy is absent."""
    cut = int(0.25 * a.size)
    return float(np.sort(a)[cut : a.size - cut].mean())


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 10, 33])
def test_iqm_matches_trim_mean_definition(n: int) -> None:
    a = np.random.default_rng(n).normal(size=n)
    assert iqm(a) == pytest.approx(_trim_mean_reference(a))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 10, 33])
def test_iqm_matches_scipy_trim_mean(n: int) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    a = np.random.default_rng(n).normal(size=n)
    assert iqm(a) == pytest.approx(float(scipy_stats.trim_mean(a, 0.25)))


def test_bootstrap_ci_contains_iqm_and_narrows_with_more_runs() -> None:
    rng = np.random.default_rng(0)
    few, many = rng.normal(size=5), rng.normal(size=100)
    lo_few, hi_few = bootstrap_ci(few)
    lo_many, hi_many = bootstrap_ci(many)
    assert lo_few <= iqm(few) <= hi_few
    assert lo_many <= iqm(many) <= hi_many
    assert hi_many - lo_many < hi_few - lo_few


def test_bootstrap_ci_is_seeded_and_supports_other_stats() -> None:
    x = np.arange(10.0)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    lo, hi = bootstrap_ci(x, stat=lambda a: float(np.median(a)), n_resamples=300)
    assert lo <= 4.5 <= hi


def test_iqm_band_matches_pointwise_iqm() -> None:
    runs = np.random.default_rng(1).normal(size=(6, 20))
    mid, low, high = iqm_band(runs, n_resamples=500)
    assert mid.shape == low.shape == high.shape == (20,)
    np.testing.assert_allclose(mid, [iqm(runs[:, j]) for j in range(20)])
    assert np.all(low <= high)


def test_wilson_interval_known_value() -> None:
    rate, low, high = success_rate_ci(45, 50)
    assert rate == pytest.approx(0.9)
    assert low == pytest.approx(0.7864, abs=1e-4)
    assert high == pytest.approx(0.9565, abs=1e-4)


def test_wilson_interval_stays_in_unit_range() -> None:
    assert success_rate_ci(0, 10)[1] == 0.0
    rate, low, high = success_rate_ci(10, 10)
    assert (rate, high) == (1.0, 1.0) and low < 1.0


def test_summarize_runs() -> None:
    s = summarize_runs([0.1, 0.5, 0.6, 0.7, 0.9])
    assert set(s) == {"iqm", "ci_low", "ci_high", "mean", "n"}
    assert s["n"] == 5
    assert s["iqm"] == pytest.approx(0.6)
    assert s["mean"] == pytest.approx(0.56)
    assert s["ci_low"] <= s["iqm"] <= s["ci_high"]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: iqm([]), "empty"),
        (lambda: iqm([1.0, float("nan")]), "NaN"),
        (lambda: iqm([[1.0, 2.0]]), "1-D"),
        (lambda: bootstrap_ci([1.0, 2.0], confidence=1.0), "confidence"),
        (lambda: bootstrap_ci([1.0, 2.0], confidence=0.0), "confidence"),
        (lambda: bootstrap_ci([1.0, 2.0], n_resamples=0), "n_resamples"),
        (lambda: success_rate_ci(1, 0), "n"),
        (lambda: success_rate_ci(11, 10), "successes"),
        (lambda: success_rate_ci(-1, 10), "successes"),
        (lambda: success_rate_ci(5, 10, confidence=1.5), "confidence"),
        (lambda: summarize_runs([]), "empty"),
        (lambda: iqm_band(np.full((3, 4), np.nan)), "NaN"),
    ],
)
def test_bad_input_raises_clear_error(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
