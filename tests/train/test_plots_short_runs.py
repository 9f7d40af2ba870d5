"""curves.png after a short run: whole-epoch ticks and loss labels that read as plain numbers (checked on the
matplotlib Axes that plot_curves saves, not on pixels)."""
import re

import pytest

pytest.importorskip("matplotlib")

from minires.train import plots  # noqa: E402

PLAIN = re.compile(r"^\d+(\.\d+)?$")  # 2, 0.05, 2.16: not 2×10^0, 1e−01 or 0.945


@pytest.fixture
def curves(monkeypatch, tmp_path):
    """plot_curves(history) -> its (loss, accuracy) Axes, drawn, as written to curves.png."""
    saved, real = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, plt, path: (saved.append(fig), fig.canvas.draw(),
                                                                 real(fig, plt, path)))

    def run(train_loss, test_loss):
        history = [{"epoch": i + 1, "train_loss": a, "test_loss": b, "train_acc": 0.2, "test_acc": 0.25}
                   for i, (a, b) in enumerate(zip(train_loss, test_loss))]
        assert plots.plot_curves(history, tmp_path / "curves.png")
        assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        return saved[-1].axes
    return run


def shown(ax, axis):
    """The tick labels inside the view of ax's x or y axis."""
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text().replace("\u2212", "-") for t in ticks
            if lo <= t.get_position()[0 if axis == "x" else 1] <= hi]


@pytest.mark.parametrize("train_loss, test_loss, epochs", [([2.3], [2.1], ["1"]), ([2.3, 1.9], [2.2, 2.0], ["1", "2"])])
def test_one_or_two_epochs_get_whole_epoch_ticks_and_plain_loss_labels(curves, train_loss, test_loss, epochs):
    loss, acc = curves(train_loss, test_loss)
    for ax in (loss, acc):
        assert shown(ax, "x") == epochs
        lo, hi = ax.get_xlim()
        assert hi - lo >= 1  # not matplotlib's 0.945-1.055 around a lone epoch
    labels = shown(loss, "y")
    assert loss.get_yscale() == "linear" and len(labels) >= 3 and all(PLAIN.match(t) for t in labels)
    assert len(labels) <= 8  # readable, not a label every 0.025


def test_a_loss_spike_goes_on_a_log_axis_with_plain_labels(curves):
    loss, _ = curves([1.13, 3.05], [113.0, 881.0])  # a diverging test loss after a 2-epoch run
    labels = shown(loss, "y")
    assert loss.get_yscale() == "log" and shown(loss, "x") == ["1", "2"]
    assert {"1", "10", "100"} <= set(labels) and all(PLAIN.match(t) for t in labels), labels
    assert not any(t.get_text() for t in loss.get_yticklabels(minor=True))


def test_losses_below_one_read_as_decimals(curves):
    loss, _ = curves([0.5, 0.3], [0.6, 0.04])
    labels = shown(loss, "y")
    assert loss.get_yscale() == "log" and "0.1" in labels and all(PLAIN.match(t) for t in labels), labels


def test_a_long_run_keeps_whole_epoch_ticks(curves):
    loss, _ = curves([3.0 - 0.05 * i for i in range(40)], [3.1 - 0.05 * i for i in range(40)])
    ticks = [float(t) for t in shown(loss, "x")]
    assert 3 <= len(ticks) <= 12 and all(t.is_integer() and 1 <= t <= 40 for t in ticks)
