"""ZTF-format transient spectra: ``flux`` (N, 1, L) and class names, in a folder of train/val/test.pt.

The default folder is the synthetic stand-in written by ``spectune data`` (see
``trainables/data/ztf_synthetic.py``); real ZTF spectra in the same format load the same way.
"""

from __future__ import annotations

from pathlib import Path

from trainables.data._base import register_data, refuse_overwrite
from trainables.data._sequences import SequenceFolder
from trainables.data.ztf_synthetic import CLASS_ORDER, N_POINTS, write_synthetic


@register_data
class ZTFSpectra(SequenceFolder):
    name = "ztf_spectra"
    key = "flux"
    classes = CLASS_ORDER
    default_dir = Path("data/ztf-synthetic")
    generate_hint = "Generate the synthetic set with `spectune data --space galspecnet` (or `make data`)"

    def prepare(self, out: Path | None, seed: int, force: bool, per_class: tuple[int, int, int] = (560, 120, 120),
                points: int = N_POINTS) -> str:
        out = self.folder(out)
        refuse_overwrite(out, force)
        paths = write_synthetic(out, seed=seed, n_train=per_class[0], n_val=per_class[1], n_test=per_class[2],
                                n_points=points)
        return (f"wrote synthetic ZTF spectra ({per_class[0]}/{per_class[1]}/{per_class[2]} per class, "
                f"{points} points, seed {seed}): " + ", ".join(str(p) for p in paths.values()))
