"""Figures a person can read: tick labels that do not run into one another, and no warning from seaborn about
data it was given empty."""

import warnings

import pytest

from test_report import render, synthetic_frames


def seconds_tick_labels(monkeypatch):
    """The tick labels of every seconds axis drawn from here on: (text, left and right edge in pixels), per axis,
    read as each figure is saved (matplotlib's layout, at the figure's size)."""
    import matplotlib.figure

    axes = []
    savefig = matplotlib.figure.Figure.savefig

    def saving(figure, *args, **kwargs):
        result = savefig(figure, *args, **kwargs)
        renderer = figure.canvas.get_renderer()
        for ax in figure.axes:
            if ax.get_xlabel() == "time (mean over seeds)":
                axes.append([(label.get_text(), *label.get_window_extent(renderer).intervalx)
                             for label in ax.get_xticklabels() if label.get_text() and label.get_visible()])
        return result

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", saving)
    return axes


def test_the_seconds_axis_labels_do_not_overlap(tmp_path, monkeypatch):
    pytest.importorskip("seaborn")
    axes = seconds_tick_labels(monkeypatch)
    render(tmp_path, synthetic_frames({"adam": 5, "sgd": 30}, n_seeds=2))
    assert axes
    for labels in axes:
        labels = sorted(labels, key=lambda label: label[1])
        assert len(labels) >= 2
        for (text, _, right), (next_text, left, _) in zip(labels, labels[1:]):
            assert right <= left, (text, next_text)
        assert all(text.endswith("s") for text, _, _ in labels)  # units on the ticks: "20 ms"


def test_a_report_where_no_rule_reached_the_target_warns_of_nothing(tmp_path):
    pytest.importorskip("seaborn")
    runs, curves, sweeps = synthetic_frames({"adam": 5, "sgd": 30}, n_seeds=2)
    runs = runs.assign(epochs_to_target=None, seconds_to_target=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = render(tmp_path, (runs, curves, sweeps))
    assert not [str(warning.message) for warning in caught if "All-NaN" in str(warning.message)]
    assert "no rule reached the target loss 0.1 on any seed" in page
