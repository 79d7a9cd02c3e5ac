"""fastgd.kernels.linking: compiled code calling a function's own machine code through a symbol.

The callee compiles once per canonical signature, gives the caller its result and its exceptions, and a caller
loaded from Numba's on-disk cache in a fresh process finds the symbol registered before its code is loaded, also
when the caller was compiled in a process that had loaded the callee from the cache (the hooks carried on).
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastgd._config import jit
from fastgd.kernels.linking import by_symbol

ROOT = pathlib.Path(__file__).resolve().parents[1]


@jit(internal=True, cache=False)
def _scaled_sum(values, scale, limit):
    """scale × Σ values; ValueError when a value exceeds ``limit``."""
    total = 0.0
    for k in range(values.size):
        if values[k] > limit:
            raise ValueError("a value above the limit")
        total += values[k]
    return total * scale


scaled_sum = by_symbol(_scaled_sum)


@jit(cache=False)
def _through_symbol(values, scale, limit):
    return scaled_sum(values, scale, limit)


@jit(cache=False)
def _through_symbol_small_int(values, limit):
    return scaled_sum(values, np.int32(3), limit)


def test_a_call_by_symbol_returns_the_callees_result_and_compiles_one_signature():
    values = np.arange(5.0)
    read_only = values.copy()
    read_only.flags.writeable = False
    assert _through_symbol(values, 2, 10.0) == 20.0
    assert _through_symbol(read_only, 2, 10.0) == 20.0  # a read-only array takes the writeable signature
    assert _through_symbol_small_int(values, 10.0) == 30.0  # an int32 is passed as an int64
    assert len(_scaled_sum.overloads) == 1


def test_a_callees_exception_reaches_python_through_the_caller():
    with pytest.raises(ValueError, match="above the limit"):
        _through_symbol(np.arange(5.0), 2, 3.0)


def test_an_array_that_is_not_contiguous_is_refused_at_typing():
    from numba.core.errors import TypingError

    with pytest.raises(TypingError, match="C-contiguous"):
        _through_symbol(np.arange(10.0)[::2], 2, 10.0)


CALLER = '''
import numpy as np
from fastgd._config import jit
from fastgd.kernels import network as kernels


@jit
def users_loss(theta, inputs, targets, n_rows, plan, loss, activations, columns):
    """A user's own compiled code around fastgd's network kernels (their layers are called by symbol)."""
    return 2.0 * kernels.loss_only(theta, inputs, targets, n_rows, plan, loss, activations, columns)
'''

RUN = '''
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from fastgd import networks
net = networks.known("digits_cnn")
theta = net.init(random_state=0)
X = np.random.default_rng(0).normal(size=(3, 1, 8, 8))
Y = np.eye(10)[[1, 2, 3]]
blocks, columns = net.workspace_elements(3)
arguments = (theta, X.reshape(-1), Y.reshape(-1), 3, net.plan, 0, np.empty(blocks), np.empty(columns))
if sys.argv[2] == "kernel":
    from fastgd.kernels import network as kernels
    print(repr(kernels.loss_only(*arguments)))
else:
    import users_code
    print(repr(users_code.users_loss(*arguments) / 2.0))
'''


def test_a_cached_caller_loads_in_a_fresh_process(tmp_path):
    """Three fresh interpreters sharing an empty cache: the first compiles the network kernel ``loss_only`` (and
    caches it and its layers); the second compiles a user's function around it, loading ``loss_only`` from the
    cache; the third loads the user's function alone from the cache, whose layers must be registered before its
    code is loaded (the hooks came to it through the ``loss_only`` the second loaded). All three give one loss."""
    (tmp_path / "users_code.py").write_text(textwrap.dedent(CALLER))
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    environment.pop("NUMBA_BOUNDSCHECK", None)

    def run(what):
        result = subprocess.run([sys.executable, "-c", RUN, str(tmp_path), what], env=environment,
                                capture_output=True, text=True, check=False, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        return float(result.stdout.strip().splitlines()[-1])

    first = run("kernel")
    assert run("user") == first  # compiled here, around kernels loaded from the cache
    assert run("user") == first  # loaded from the cache with nothing else compiled or loaded before it


def test_where_numba_cannot_keep_the_hooks_the_callee_is_linked_as_numba_links_any_function(monkeypatch):
    from fastgd import _config

    assert _config.RELOAD_HOOKS_KEPT  # this Numba's compile results carry the hooks: calls go by symbol
    monkeypatch.setattr(_config, "RELOAD_HOOKS_KEPT", False)

    @jit(internal=True, cache=False)
    def doubled(x):
        return 2.0 * x

    linked = by_symbol(doubled)
    assert linked is doubled  # the dispatcher itself: no symbol, nothing to register

    @jit(cache=False)
    def caller(x):
        return linked(x) + 1.0

    assert caller(3.0) == 7.0
