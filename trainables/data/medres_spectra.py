"""Transient spectra from a second, medium-resolution instrument, with few labels: the transfer target.

Same sources, classes and file format as ``ztf_spectra``; the spectrograph differs
(``ztf_synthetic.MEDRES``): R ~ 500-1000 instead of ~ 100 (lines 5-10 times narrower and deeper),
4400-9200 A instead of 3850-8500 A (the blue lines leave, the far red comes in), a red-sensitive
CCD with brighter red sky, S/N 2-25 instead of 3-50. Only 20 labelled spectra per class train by
default; validation and test keep 100 per class so that selection and the final score are not noise.
"""

from __future__ import annotations

from pathlib import Path

from trainables.data._base import register_data, refuse_overwrite
from trainables.data._sequences import SequenceFolder
from trainables.data.ztf_synthetic import CLASS_ORDER, MEDRES, N_POINTS, write_synthetic


@register_data
class MedResSpectra(SequenceFolder):
    name = "medres_spectra"
    key = "flux"
    classes = CLASS_ORDER
    default_dir = Path("data/medres-synthetic")
    generate_hint = "Generate the second instrument's set with `spectune data --space galspecnet_lora`"

    def prepare(self, out: Path | None, seed: int, force: bool, per_class: tuple[int, int, int] = (20, 100, 100),
                points: int = N_POINTS) -> str:
        out = self.folder(out)
        refuse_overwrite(out, force)
        paths = write_synthetic(out, seed=seed, n_train=per_class[0], n_val=per_class[1], n_test=per_class[2],
                                n_points=points, instrument=MEDRES)
        return (f"wrote {MEDRES.name} spectra (R {MEDRES.resolution[0]:g}-{MEDRES.resolution[1]:g}, "
                f"{MEDRES.wave[0]:g}-{MEDRES.wave[1]:g} A; {per_class[0]}/{per_class[1]}/{per_class[2]} per class, "
                f"{points} points, seed {seed}): " + ", ".join(str(p) for p in paths.values()))
