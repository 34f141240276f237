"""Whether a search fuses its trials (``--fuse K|auto|1``), and whether a space's model can be fused.

``--fuse auto`` (the default) fuses only where the model fuses (:func:`trainables.fused.fusion_refusal` at
the dry run's config is ``None``) and a measured rule for that model and device is stored in
:data:`RULES_FILE`, the one place such figures live: a rule says how many members a group takes and what
a whole fused search gave against the same search unfused, with the command that measured it. Until a
rule is stored, ``auto`` is unfused, and the line printed before the search says why. ``--fuse K`` fuses
wherever the model can be (a model that cannot is refused before Ray starts); ``--fuse 1`` never does.
How fused trials run through Tune is :mod:`search.running.fused_trials`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from results.errors import OptionError, UserError
from search.options import fuse_members
from spaces import Space
from trainables.data import InputSpec
from trainables.fused import fusion_refusal, is_member_knob
from trainables.pair import Pair, Resolved, load_data
from trainables.pretrained import Base

# The measured rules of --fuse auto: one per model and device, with its figure and the command that gave it.
RULES_FILE = Path(__file__).with_name("fusion_rules.json")


@dataclass(frozen=True)
class Fusion:
    """What a search decided: ``members`` configs per fused group (1: unfused) and the line that says why."""

    members: int
    line: str


def _rules(model: str) -> list[dict[str, Any]]:
    return [r for r in json.loads(RULES_FILE.read_text())["rules"] if r["model"] == model]


def measured_rule(model: str, device: str) -> dict[str, Any] | None:
    """The stored rule for ``model`` on ``device`` (``cpu`` or ``cuda``), ``None`` if none was measured."""
    return next((r for r in _rules(model) if r["device"] == device), None)


def may_fuse(option: str, model: str) -> bool:
    """Whether ``--fuse option`` can fuse ``model`` on some device: whether its refusal is worth a model build."""
    k = fuse_members(option)
    return bool(k and k > 1) or (k is None and bool(_rules(model)))


def decide_fusion(option: str, model: str, device: str, refusal: str | None) -> Fusion:
    """The members per group for ``--fuse option`` (``auto`` or a number) on ``model`` and ``device``;
    ``refusal`` is :func:`trainables.fused.fusion_refusal` at the dry run's config (an explicit K on a
    model that refuses was turned down before Ray started: :func:`check_fusable`)."""
    k = fuse_members(option)
    if k == 1:
        return Fusion(1, "fusion: off (--fuse 1)")
    if k is not None:
        return Fusion(k, f"fusion: K={k} (--fuse {k}): configs of one architecture and batch size train as one "
                         f"model, {k} at most, each its own trial")
    if refusal is not None:
        return Fusion(1, f"fusion: off (model {model} does not fuse: {refusal})")
    rule = measured_rule(model, device)
    if rule is None:
        return Fusion(1, f"fusion: off (no measurement for {model} on {device}; --fuse K fuses anyway)")
    return Fusion(int(rule["members"]), f"fusion: K={rule['members']} ({model} on {device}: {rule['speedup']:g}x, "
                                        f"{rule['measured']})")


def check_fusable(option: str, space: Space, refusal: str | None) -> None:
    """An explicit ``--fuse K`` (K > 1) on a space whose model cannot be fused (``refusal``, at the dry run's
    config), refused in one line before Ray starts."""
    k = fuse_members(option)
    if k and k > 1 and refusal is not None:
        raise OptionError(f"--fuse {k}: model {space.pair.model} of space {space.name} cannot be fused ({refusal}); "
                          "use --fuse 1 (or auto, which fuses only where it pays).")


def model_refusal(pair: Pair, resolved: Resolved, spec: InputSpec, base: Base | None) -> str | None:
    """Why ``pair``'s model at the ``resolved`` config cannot be fused (:func:`trainables.fused.fusion_refusal`
    on the built model), ``None`` if it can."""
    return fusion_refusal(pair.model_fn(spec, resolved, base)(), resolved.recipe, pair.augment(resolved))


def grouped_by(space: Space) -> list[str]:
    """The searched keys that split a space's configs into separate fused groups (:func:`trainables.fused.group_key`:
    the architecture, the batch size and the optimizer; dropout rates may differ inside a group)."""
    model_keys = space.pair.model_entry.hparams
    return [k for k in space.params
            if (k in model_keys and not is_member_knob(k)) or k in ("batch_size", "optimizer")]


def space_fusion(space: Space) -> str:
    """``spectune spaces``' word on whether a space's model fuses, at its first config on its own data, and
    what splits its configs into groups."""
    pair = space.pair
    try:
        data = load_data(pair, None, None, test=False)
        refusal = model_refusal(pair, pair.resolve(space.first_config(), source=space.where), data.spec,
                                pair.load_base())
    except UserError:
        return f"not known until its data (and base) can be read: spectune data --space {space.name}"
    if refusal is not None:
        return f"no ({refusal})"
    split = grouped_by(space)
    # A group takes only configs equal in these keys: the more of them a space searches, the smaller its groups.
    return ("yes at its first config (--fuse K; auto once a measurement is stored)"
            + (f"; configs are grouped by {', '.join(split)}: only those equal in all of them train together"
               if split else "; every config can join one group"))
