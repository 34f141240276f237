"""Noisy sine, triangle and square waves: the course's "tricks of the trade" 1D-CNN exercise.

Each wave has 128 points over one second, a random frequency in [1, 10] Hz, amplitude in
[0.5, 1.5] and phase in [0, 2 pi), plus Gaussian noise of standard deviation ``NOISE`` and a
random offset. At this noise level a triangle and a sine differ by less than the noise in most
points, so the notebook's plain model stays clearly below perfect (see the README for the figure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.data._base import register_data, refuse_overwrite, write_torch_splits
from trainables.data._sequences import SequenceFolder

CLASSES = ("sine", "triangle", "square")
POINTS = 128
NOISE = 0.5


def generate_waves(n_per_class: int, rng: np.random.Generator, points: int = POINTS,
                   noise: float = NOISE) -> tuple[np.ndarray, np.ndarray]:
    """(signals float32 (3 * n_per_class, 1, points), labels int64), shuffled."""
    n = n_per_class * len(CLASSES)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    t = np.linspace(0.0, 1.0, points, endpoint=False)[None, :]
    freq = rng.uniform(1.0, 10.0, (n, 1))
    amp = rng.uniform(0.5, 1.5, (n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1))
    cycle = (freq * t + phase / (2 * np.pi)) % 1.0
    waves = np.stack([np.sin(2 * np.pi * cycle),
                      4.0 * np.abs(cycle - 0.5) - 1.0,
                      np.where(cycle < 0.5, 1.0, -1.0)])
    x = amp * waves[labels, np.arange(n)]
    x += rng.normal(0.0, noise, x.shape) + rng.normal(0.0, 0.2, (n, 1))
    order = rng.permutation(n)
    return x[order, None, :].astype(np.float32), labels[order]


@register_data
class Waveforms(SequenceFolder):
    name = "waveforms"
    key = "signal"
    classes = CLASSES
    default_dir = Path("data/waveforms")
    generate_hint = "Generate the waves with `spectune data --space waveform_cnn`"

    def prepare(self, out: Path | None, seed: int, force: bool, per_class: tuple[int, int, int] = (1000, 300, 300),
                points: int = POINTS) -> str:
        import torch

        out = self.folder(out)
        refuse_overwrite(out, force)
        payloads = {}
        for (split, n), rng in zip(zip(("train", "val", "test"), per_class), np.random.default_rng(seed).spawn(3)):
            x, y = generate_waves(n, rng, points)
            payloads[split] = {"signal": torch.from_numpy(x), "labels": [CLASSES[i] for i in y]}
        paths = write_torch_splits(out, payloads)
        return (f"wrote waveforms ({per_class[0]}/{per_class[1]}/{per_class[2]} per class, {points} points, "
                f"noise sd {NOISE}, seed {seed}): " + ", ".join(str(p) for p in paths.values()))
