"""The BLAS-3 wrappers of :mod:`fastgd.kernels.blas` called from compiled code, against NumPy's products."""

import numpy as np
import pytest

from fastgd._config import jit
from fastgd.kernels import blas, preconditioners


@jit(cache=False)
def _compiled_syrk(a, c, m, n, transpose_a, alpha, beta):
    blas.syrk(a, 0, c, 3, m, n, transpose_a, alpha, beta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (0.25, 0.75), (1.0, 1.0)])
def test_syrk_updates_the_upper_triangle_only_as_numpy_computes_it(dtype, transpose_a, alpha, beta):
    rng = np.random.default_rng(0)
    m, n = 7, 13
    side = n if transpose_a else m
    a = rng.normal(size=m * n).astype(dtype)
    # an offset of 3 into C, whose entries around the block must stay as they were
    c = rng.normal(size=side * side + 5).astype(dtype)
    before = c.copy()
    _compiled_syrk(a, c, m, n, transpose_a, alpha, beta)
    matrix = a.reshape(m, n).astype(np.float64)
    gram = matrix.T @ matrix if transpose_a else matrix @ matrix.T
    start = before[3:3 + side * side].reshape(side, side).astype(np.float64)
    expected = alpha * gram + beta * start
    block = c[3:3 + side * side].reshape(side, side)
    upper = np.triu_indices(side)
    lower = np.tril_indices(side, -1)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(block[upper], expected[upper], rtol=tolerance, atol=tolerance)
    assert np.array_equal(block[lower], before[3:3 + side * side].reshape(side, side)[lower])
    assert np.array_equal(c[:3], before[:3]) and np.array_equal(c[3 + side * side:], before[3 + side * side:])
    # the Python form (NumPy: the slow, obvious one) agrees
    python_c = before.copy()
    blas.syrk(a, 0, python_c, 3, m, n, transpose_a, alpha, beta)
    np.testing.assert_allclose(python_c, c, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("rows, columns", [(5, 70), (37, 3), (33, 64)])
def test_a_statistic_takes_the_whole_symmetric_gram_matrix(dtype, transpose, rows, columns):
    """Shampoo's L += G Gᵀ and SOAP's lerp(GG, G Gᵀ, w): syrk's triangle copied to both places, on sides that are
    not a whole number of the mirror's tiles."""
    rng = np.random.default_rng(1)
    g = rng.normal(size=rows * columns).astype(dtype)
    side = columns if transpose else rows
    start = rng.normal(size=(side, side))
    start = (start + start.T).astype(dtype)
    matrix = g.reshape(rows, columns).astype(np.float64)
    gram = matrix.T @ matrix if transpose else matrix @ matrix.T
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for alpha, beta in [(1.0, 1.0), (0.1, 0.9)]:
        aux = np.concatenate([np.full(4, 7.0), start.ravel()]).astype(dtype)
        preconditioners._add_gram(g, rows, columns, transpose, aux, 4, alpha, beta)
        statistic = aux[4:].reshape(side, side)
        np.testing.assert_allclose(statistic, beta * start + alpha * gram, rtol=tolerance,
                                   atol=tolerance * np.abs(gram).max())
        assert np.array_equal(statistic, statistic.T)
        assert np.array_equal(aux[:4], np.full(4, 7.0, dtype))
