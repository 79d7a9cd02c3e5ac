"""The tuning protocol's pure parts: search spaces declared with the rules, Sobol trials, best-so-far, selection."""

import math

import numpy as np
import pandas as pd
import pytest

from fastgd import optim, rules
from fastgd.rules import registry
from fastgd.rules.definition import LearningRate, LogUniform, OneMinusLogUniform, Real, RuleError, Uniform
from fastgd.sweep import tuning


def _inside(distribution, value):
    return distribution.low - 1e-12 <= (1 - value if isinstance(distribution, OneMinusLogUniform) else value) \
        <= distribution.high + 1e-12


@pytest.mark.parametrize("name", list(registry.RULES))
def test_samples_lie_in_the_space_and_every_optimizer_takes_them(name):
    space = tuning.search_space(name)
    assert next(iter(space)) == "lr"
    settings = tuning.sample_settings(name, "large", seed=5)
    assert len(settings) == tuning.BUDGETS["large"]
    for setting in settings:
        assert list(setting) == list(space)
        for key, distribution in space.items():
            if isinstance(distribution, tuple):
                default = registry.RULES[name].defaults[key]
                for entry, value, fixed in zip(distribution, setting[key], default):
                    assert value == fixed if entry is None else _inside(entry, value)
            else:
                assert _inside(distribution, setting[key])
        optim.OPTIMIZERS[name](np.zeros(4), **setting)


def test_samples_are_reproducible_by_seed_and_spread_out():
    first = tuning.sample_settings("adam", "small", seed=11)
    assert tuning.sample_settings("adam", "small", seed=11) == first
    assert tuning.sample_settings("adam", "small", seed=12) != first
    rates = np.log10([setting["lr"] for setting in first])
    # eight Sobol points over five decades: one in each eighth of the log range
    cells = np.floor((rates + 5) / 5 * 8).astype(int)
    assert sorted(cells) == list(range(8))


@pytest.mark.parametrize("name", list(registry.RULES))
def test_one_shot_is_the_defaults(name):
    [setting] = tuning.sample_settings(name, "one-shot")
    defaults = registry.RULES[name].defaults
    assert setting == {key: defaults[key] for key in tuning.search_space(name)}


def test_search_spaces_are_declared_with_the_rules():
    adam = tuning.search_space("adam")
    assert isinstance(adam["lr"], LogUniform) and isinstance(adam["eps"], LogUniform)
    assert all(isinstance(entry, OneMinusLogUniform) for entry in adam["betas"])
    assert "momentum" in tuning.search_space("momentum") and "momentum" not in tuning.search_space("sgd")
    assert "weight_decay" in tuning.search_space("adamw") and "weight_decay" not in tuning.search_space("adam")


def test_one_minus_log_uniform_is_monotone_and_log_spaced_in_one_minus_beta():
    space = OneMinusLogUniform(1e-3, 1e-1)
    assert space.from_unit(0.0) == pytest.approx(0.9) and space.from_unit(1.0) == pytest.approx(0.999)
    assert space.from_unit(0.5) == pytest.approx(0.99)


def test_a_bad_search_space_is_refused_with_the_rule():
    def element(param, grad, lr, scale):
        return param - lr * scale * grad

    hyperparameters = {"lr": LearningRate(0.1), "scale": Real(1.0, 0.0, 2.0, search=Uniform(0.5, 3.0))}
    with pytest.raises(RuleError, match="search space reaches values it refuses"):
        rules.Rule("scaled", element=element, hyperparameters=hyperparameters)
    with pytest.raises(RuleError, match="log-uniform"):
        rules.Rule("scaled", element=element, hyperparameters={"lr": LearningRate(0.1, search=LogUniform(0.0, 1.0)),
                                                               "scale": Real(1.0)})
    with pytest.raises(RuleError, match="LogUniform, Uniform or OneMinusLogUniform"):
        rules.Rule("scaled", element=element, hyperparameters={"lr": LearningRate(0.1, search=(1e-3, 1.0)),
                                                               "scale": Real(1.0)})


@pytest.mark.parametrize("budget", ["medium", 0, 2.5, True])
def test_unknown_budgets_are_refused(budget):
    with pytest.raises(ValueError, match="budget"):
        tuning.sample_settings("adam", budget)


def test_an_integer_budget_takes_the_first_sobol_points():
    assert len(tuning.sample_settings("sgd", 5)) == 5
    assert tuning.sample_settings("sgd", 5, seed=2) == tuning.sample_settings("sgd", 8, seed=2)[:5]


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown rule 'adamm'"):
        tuning.sample_settings("adamm")


def test_trials_frame_splits_the_learning_rate_as_a_sweep_takes_it():
    frame = tuning.trials_frame(["sgd", "adam"], "small", seed=0)
    assert len(frame) == 16 and list(frame["trial"][:8]) == list(range(1, 9))
    row = frame[frame["rule"] == "adam"].iloc[0]
    assert row["learning_rate"] == row["setting"]["lr"] and "lr" not in row["hyperparameters"]
    assert set(row["hyperparameters"]) == {"betas", "eps"}


def _scored_trials():
    return pd.DataFrame({
        "rule": ["a"] * 4 + ["b"] * 4,
        "trial": [1, 2, 3, 4] * 2,
        "validation_loss": [0.5, np.nan, 0.3, 0.4, 0.9, 0.2, 0.2, 0.1],
        "learning_rate": [0.1, 0.2, 0.3, 0.4, 1.0, 2.0, 3.0, 4.0],
        "hyperparameters": [{}] * 4 + [{"momentum": 0.9}] * 4,
        "test_metric": [0.1] * 8,
    })


def test_best_so_far_is_the_running_minimum_in_trial_order():
    trials = _scored_trials().sample(frac=1.0, random_state=0)  # order of rows does not matter, trial does
    curve = tuning.best_so_far(trials)
    assert list(curve["rule"]) == ["a"] * 4 + ["b"] * 4
    assert curve["best_so_far"].tolist() == [0.5, 0.5, 0.3, 0.3, 0.9, 0.2, 0.2, 0.1]
    higher = tuning.best_so_far(_scored_trials().assign(accuracy=[np.nan, 0.5, 0.4, 0.7, 0.1, 0.2, 0.3, 0.2]),
                                score="accuracy", minimize=False)
    assert math.isnan(higher["best_so_far"].iloc[0]) and higher["best_so_far"].tolist()[1:4] == [0.5, 0.5, 0.7]


def test_selection_uses_validation_never_test():
    with pytest.raises(ValueError, match="never the test set"):
        tuning.best_so_far(_scored_trials(), score="test_metric")
    with pytest.raises(ValueError, match="never the test set"):
        tuning.choose_settings(_scored_trials(), score="test_metric")


def test_choose_settings_takes_the_best_trial_and_fresh_seeds():
    chosen = tuning.choose_settings(_scored_trials(), tuning_seeds=[0, 1])
    assert chosen["trial"].tolist() == [3, 4]
    assert chosen["setting"].tolist() == [{"lr": 0.3}, {"lr": 4.0, "momentum": 0.9}]
    for seeds in chosen["seeds"]:
        assert len(seeds) == tuning.MIN_SEEDS and not {0, 1} & set(seeds)
    # ties go to the earlier trial
    tied = _scored_trials().assign(validation_loss=[0.2, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5])
    assert tuning.choose_settings(tied)["trial"].tolist() == [1, 1]
    with pytest.raises(ValueError, match="at least 10 seeds"):
        tuning.choose_settings(_scored_trials(), n_seeds=3)


def test_choose_settings_from_sampled_trials_round_trips_the_setting():
    trials = tuning.trials_frame("adam", "small", seed=4)
    trials["validation_loss"] = np.arange(len(trials))[::-1].astype(float)
    chosen = tuning.choose_settings(trials)
    assert chosen["setting"].item() == trials["setting"].iloc[-1]
    optim.OPTIMIZERS["adam"](np.zeros(4), **chosen["setting"].item())


def test_a_tuple_search_needs_one_distribution_per_entry():
    def element(param, grad, lr, beta1, beta2):
        return param - lr * beta1 * beta2 * grad

    for search in ((None, None), (Uniform(0.5, 0.9),)):
        with pytest.raises(RuleError, match="tuple of 2 distributions"):
            rules.Rule("paired", element=element,
                       hyperparameters={"lr": LearningRate(0.1), "betas": rules.Betas((0.9, 0.99), search=search)})
