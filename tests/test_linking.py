"""fastgd.kernels.linking: compiled code calling a function's own machine code through a symbol.

The callee compiles once per canonical signature, gives the caller its result and its exceptions, and a caller
loaded from Numba's on-disk cache in a fresh process finds the symbol registered before its code is loaded, also
when the caller was compiled in a process that had loaded the callee from the cache (the hooks carried on).

A function called on demand (``on_demand``) is not compiled with its callers: ``prepare`` compiles it, or its
first call from compiled code does, and a failure there is a RuntimeError naming it, not a crash. A network's
kinds are compiled only as a network uses them, and a second process loads them from the cache.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from numba import types

from fastgd._config import jit
from fastgd.kernels import linking
from fastgd.kernels.linking import by_symbol, on_demand

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


def _vector_and_scale(real):
    return types.Array(real, 1, "C"), real


@on_demand(_vector_and_scale)
@jit(internal=True, cache=False)
def _scaled_in_place(values, scale):
    for k in range(values.size):
        values[k] *= scale


@jit(cache=False)
def _scales(values, scale):
    _scaled_in_place(values, scale)
    return values


@on_demand(_vector_and_scale)
@jit(internal=True, cache=False)
def _does_not_compile(values, scale):
    values.no_such_attribute = scale


@jit(cache=False)
def _calls_what_does_not_compile(values, scale):
    _does_not_compile(values, scale)


def test_a_function_on_demand_compiles_when_prepared_not_with_its_callers():
    values = np.arange(4.0, dtype=np.float32)
    dispatcher = linking._DISPATCHERS[__name__, "_scaled_in_place"]
    _scales.compile((types.Array(types.float32, 1, "C"), types.float32))
    assert len(dispatcher.overloads) == 0
    linking.prepare(_scaled_in_place, np.float32)
    assert len(dispatcher.overloads) == 1
    asked = len(linking.PREPARED_FROM_COMPILED_CODE)
    assert _scales(values, np.float32(2.0)).tolist() == [0.0, 2.0, 4.0, 6.0]
    assert len(linking.PREPARED_FROM_COMPILED_CODE) == asked  # its slot was filled: nothing asked


def test_a_function_on_demand_that_nobody_prepared_compiles_at_its_first_call():
    dispatcher = linking._DISPATCHERS[__name__, "_scaled_in_place"]
    float64 = (types.Array(types.float64, 1, "C"), types.float64)
    assert float64 not in dispatcher.overloads
    assert _scales(np.arange(3.0), 3.0).tolist() == [0.0, 3.0, 6.0]
    assert linking.PREPARED_FROM_COMPILED_CODE[-1] == (__name__, "_scaled_in_place", float64)
    assert float64 in dispatcher.overloads


def test_a_function_on_demand_that_cannot_compile_raises_a_runtime_error_naming_it(capfd):
    with pytest.raises(RuntimeError, match="_does_not_compile for float64 could not be compiled"):
        _calls_what_does_not_compile(np.arange(3.0), 2.0)
    assert "no_such_attribute" in capfd.readouterr().err  # the reason, printed where compiled code asked


def test_a_call_on_demand_with_undeclared_types_is_refused_at_typing():
    from numba.core.errors import TypingError

    with pytest.raises(TypingError, match="_scaled_in_place takes one of"):
        _scales(np.arange(3, dtype=np.int64), 2)


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
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from fastgd import networks
from fastgd.kernels import linking
from fastgd.kernels import network as kernels
from fastgd.networks import reference
net = networks.known("digits_cnn")
theta = net.init(random_state=0)
X = np.random.default_rng(0).normal(size=(3, 1, 8, 8))
Y = np.eye(10)[[1, 2, 3]]
blocks, columns = net.workspace_elements(3)
arguments = (theta, X.reshape(-1), Y.reshape(-1), 3, net.plan, 0, np.empty(blocks), np.empty(columns))
result = {}
if sys.argv[2] == "kernel":
    result["loss"] = kernels.loss_only(*arguments)
elif sys.argv[2] == "user":
    import users_code
    result["loss"] = users_code.users_loss(*arguments) / 2.0
else:  # the network's own methods, then a network of other kinds
    result["loss"] = net.loss(theta, X, Y)
    net.loss_grad(theta, X, Y)
    net.predict(theta, X)
    others = networks.Network([networks.Conv2D(3, 3), networks.Tanh(), networks.AvgPool2D(2),
                               networks.GlobalAvgPool(), networks.Sigmoid(), networks.Flatten(), networks.Dense(10)],
                              input_shape=(1, 8, 8))
    theta = others.init(random_state=1)
    loss, grad = others.loss_grad(theta, X, Y)
    expected_loss, expected_grad = reference.loss_and_gradient(others, theta, X, Y)
    result["others"] = [abs(loss - expected_loss) / expected_loss,
                        float(np.max(np.abs(grad - expected_grad)) / np.max(np.abs(expected_grad)))]
kinds = {name: linking._DISPATCHERS[kernels.__name__, name] for name, value in vars(kernels).items()
         if hasattr(value, "_on_demand")}
result["asked"] = [owner[1] for owner in linking.PREPARED_FROM_COMPILED_CODE]
result["compiled"] = sorted(name for name, kind in kinds.items() if kind.overloads)
result["not_from_the_cache"] = sorted(name for name, kind in kinds.items() if kind.stats.cache_misses)
print(json.dumps(result))
'''

# the digits CNN's convolutions (each fused with its ReLU), 2×2 max pools, Flatten and dense layer
DIGITS_FORWARD = ["_conv_forward", "_max_pool_forward_2x2", "_copy_forward", "_dense_forward"]


def test_a_cached_caller_loads_in_a_fresh_process_and_compiles_only_the_kinds_it_runs(tmp_path):
    """Fresh interpreters sharing an empty cache. The first calls the network kernel ``loss_only`` on the digits CNN's
    plan from Python, preparing nothing: its compiled code asks for the four forward kinds the plan runs, which are
    compiled then (and cached), and no other kind is. The second compiles a user's function around ``loss_only``,
    loaded from the cache; the third loads the user's function alone from the cache, whose slots must be registered
    before its code is loaded (the hooks came to it through the ``loss_only`` the second loaded): both load the
    kinds from the cache, compiling none. The fourth runs the network's own methods, which prepare every kind they
    run (nothing asked from compiled code; the backward kinds compiled there, the forward ones loaded), then a
    network of kinds the others did not use, compiled then and right against the NumPy oracle. One loss in all."""
    (tmp_path / "users_code.py").write_text(textwrap.dedent(CALLER))
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    environment.pop("NUMBA_BOUNDSCHECK", None)

    def run(what):
        result = subprocess.run([sys.executable, "-c", RUN, str(tmp_path), what], env=environment,
                                capture_output=True, text=True, check=False, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    first = run("kernel")
    assert first["asked"] == DIGITS_FORWARD
    assert first["compiled"] == first["not_from_the_cache"] == sorted(DIGITS_FORWARD)
    for _ in range(2):  # compiled around kernels loaded from the cache; then loaded with nothing before it
        user = run("user")
        assert user["loss"] == first["loss"]
        assert user["asked"] == DIGITS_FORWARD and user["not_from_the_cache"] == []
    methods = run("network")
    assert methods["loss"] == first["loss"]
    assert methods["asked"] == []
    backward = ["_conv_backward", "_max_pool_backward_2x2", "_copy_backward", "_dense_backward"]
    others = [f"_{kind}_{way}" for kind in ("tanh", "avg_pool", "global_avg_pool", "sigmoid")
              for way in ("forward", "backward")]
    assert methods["not_from_the_cache"] == sorted(backward + others)
    assert methods["compiled"] == sorted(DIGITS_FORWARD + backward + others)
    assert max(methods["others"]) < 1e-12
    assert "_relu_forward" not in methods["compiled"]  # each ReLU here follows a convolution, which applies it


def test_where_numba_cannot_keep_the_hooks_the_callee_is_linked_as_numba_links_any_function(monkeypatch):
    from fastgd import _config

    assert _config.RELOAD_HOOKS_KEPT  # this Numba's compile results carry the hooks: calls go by symbol
    monkeypatch.setattr(_config, "RELOAD_HOOKS_KEPT", False)

    @jit(internal=True, cache=False)
    def doubled(x):
        return 2.0 * x

    linked = by_symbol(doubled)
    assert linked is doubled  # the dispatcher itself: no symbol, nothing to register
    assert on_demand(_vector_and_scale)(doubled) is doubled
    linking.prepare(doubled, np.float64)  # nothing to prepare: Numba links it into its callers

    @jit(cache=False)
    def caller(x):
        return linked(x) + 1.0

    assert caller(3.0) == 7.0
