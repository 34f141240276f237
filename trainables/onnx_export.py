"""``spectune export --onnx DIR``: a saved model as ONNX, checked against PyTorch on the validation split.

The checkpoint folder is what ``spectune train --save DIR`` writes (``make train`` saves the retrained
winner to ``runs/best-model``): its ``config.json`` names the pair, the resolved config, the data
scaling and, for a fine-tuned model, the base and its sha256. The model is rebuilt from it (LoRA
adapters merged into their layers, so the graph is a plain network), exported with PyTorch's
exporter with a dynamic batch axis, then run with onnxruntime on every validation example; the
largest logit difference and the prediction agreement are printed and written beside the model
with the opset, the input spec and the class order. A regressor is exported with its target's
standardisation folded into the graph, so its one output ``prediction`` is in the target's own unit;
its check gives the largest prediction difference, in that unit and in target standard deviations (the
limit applies to these), and the ONNX model's validation RMSE. Nothing is
written unless the check passes.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from results.files import write_json
from results.best_file import DataOptions
from trainables.checkpoint import load_trainable_state, read_checkpoint
from results.errors import OptionError
from trainables.pair import Pair, load_data
from trainables.pretrained import check_same_base
from trainables.tasks import REGRESSION

# Beyond this the exported graph is not the same function; float32 reordering stays near 1e-5. A
# regressor's predictions are compared in standardised units (divided by the target's std): in the
# target's unit the same float32 error grows with the std (dollars: 1e-2 and more).
MAX_LOGIT_DIFF = 1e-3


@dataclass(frozen=True)
class OnnxReport:
    """What the check found: ``agree`` counts the same predicted class (a regressor: predictions within
    the tolerance); ``val_rmse`` is a regressor's validation RMSE from the ONNX model, and ``max_std_diff``
    its largest prediction difference in target standard deviations, which the limit applies to."""

    path: Path
    max_abs_diff: float
    agree: int
    total: int
    opset: int
    val_rmse: float | None = None
    unit: str = ""
    max_std_diff: float | None = None


def in_target_unit(proto: Any, output: str, mean: float, std: float) -> Any:
    """The exported graph with ``output * std + mean`` appended, so that a regressor trained on a
    standardised target answers in the target's own unit. (Done on the ONNX graph: torch's exporter
    takes dynamic shapes for a model's named inputs, which a wrapping module would hide.)"""
    from onnx import helper, numpy_helper

    graph = proto.graph
    raw = f"{output}_standardised"
    for node in graph.node:
        node.output[:] = [raw if name == output else name for name in node.output]
    graph.initializer.extend([numpy_helper.from_array(np.array(std, dtype=np.float32), f"{output}_std"),
                              numpy_helper.from_array(np.array(mean, dtype=np.float32), f"{output}_mean")])
    graph.node.extend([helper.make_node("Mul", [raw, f"{output}_std"], [f"{output}_scaled"]),
                       helper.make_node("Add", [f"{output}_scaled", f"{output}_mean"], [output])])
    return proto


def _require_onnx() -> None:
    missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise OptionError(f"ONNX export needs {missing}: pip install -e '.[onnx]' (make install includes it).")


def rebuild(folder: Path, data_dir: Path | None = None) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """The model of a checkpoint folder, its validation data (scaled as when it was trained) and its record."""
    state, record = read_checkpoint(folder)
    for key in ("model", "data", "config", "data_options"):
        if key not in record:
            raise OptionError(f"checkpoint {folder}: config.json has no {key!r}; save the model again with "
                              "`spectune train --config best.json --save DIR`.")
    pair = Pair(record["model"], record["data"])
    resolved = pair.resolve(record["config"], source=f"{folder}/config.json")
    if resolved.model.get("quantize", "none") != "none":
        # bitsandbytes' 4- and 8-bit matmuls are custom ops that torch's ONNX exporter cannot trace.
        raise OptionError(f"checkpoint {folder}: its base is quantised (quantize={resolved.model['quantize']!r}), "
                          "which ONNX export cannot trace; retrain with quantize 'none' to export.")
    options = DataOptions.from_record(record)
    data = load_data(pair, data_dir or options.folder(), options.classes, test=False, seed=resolved.recipe.seed,
                     **options.scaling())
    if options.mismatch(data.fingerprint):
        raise OptionError(f"checkpoint {folder}: {options.mismatch(data.fingerprint)}; pass --data with the "
                          "original folder.")
    recorded_base = record.get("base")
    base = pair.load_base(recorded_base["path"] if recorded_base else None)
    if base is not None:
        check_same_base(base, recorded_base, f"checkpoint {folder}")
    model = load_trainable_state(pair.model_fn(data.spec, resolved, base)(), state, f"checkpoint {folder}")
    if hasattr(model, "merge_and_unload"):   # a peft model: fold the adapters into their layers
        model = model.merge_and_unload()
    return model.eval(), data, record


def export_onnx(folder: Path, out: Path | None = None, data_dir: Path | None = None, batch: int = 256) -> OnnxReport:
    """Export, check with onnxruntime on the validation split, and write ``out`` and ``out.json``."""
    _require_onnx()
    import onnx
    import onnxruntime as ort

    folder = Path(folder)
    out = Path(out) if out else folder / "model.onnx"
    model, data, record = rebuild(folder, data_dir)
    regression = data.task == REGRESSION
    mean, std = data.target_scale
    output = "prediction" if regression else "logits"
    names = list(data.val.inputs)
    example = {k: torch.from_numpy(np.ascontiguousarray(v[:2])) for k, v in data.val.inputs.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch_dim = torch.export.Dim("batch")
            program = torch.onnx.export(model, (), None, kwargs=example, input_names=names, output_names=[output],
                                        dynamic_shapes={k: {0: batch_dim} for k in names}, dynamo=True,
                                        verbose=False)
        graph = in_target_unit(program.model_proto, output, mean, std) if regression else program.model_proto
        # One self-contained file (the exporter's default puts the weights in a side file).
        onnx.save_model(graph, tmp, save_as_external_data=False)
        os.chmod(tmp, 0o644)
        onnx.checker.check_model(tmp)
        opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
        session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        torch_logits, onnx_logits = [], []
        with torch.no_grad():
            for start in range(0, len(data.val), batch):
                part = {k: np.ascontiguousarray(v[start:start + batch]) for k, v in data.val.inputs.items()}
                torch_logits.append(model(**{k: torch.from_numpy(v) for k, v in part.items()}).numpy())
                onnx_logits.append(session.run([output], part)[0])
        reference, exported = np.concatenate(torch_logits), np.concatenate(onnx_logits)
        if regression:
            reference = reference * std + mean
        gap = np.abs(reference - exported).max(1)
        diff = float(gap.max())
        if regression:
            scaled = diff / std
            agree = int((gap / std <= MAX_LOGIT_DIFF).sum())
            if scaled > MAX_LOGIT_DIFF:
                raise OptionError(f"the ONNX model's predictions differ from PyTorch's by up to {diff:.2e} "
                                  f"({data.spec.target or 'target'}, in its unit), {scaled:.2e} target standard "
                                  f"deviations (std {std:.4g}), on the validation split (limit {MAX_LOGIT_DIFF:g} "
                                  "standard deviations); not written.")
        else:
            scaled = None
            agree = int((reference.argmax(1) == exported.argmax(1)).sum())
            if diff > MAX_LOGIT_DIFF:
                raise OptionError(f"the ONNX model's {output} differ from PyTorch's by up to {diff:.2e} on the "
                                  f"validation split (limit {MAX_LOGIT_DIFF:g}); not written.")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    from sklearn.metrics import f1_score

    if regression:
        # The validation targets are standardised as the model learned them: back to the target's unit.
        error = exported[:, 0].astype(np.float64) - (data.val.labels.astype(np.float64) * std + mean)
        rmse = float(np.sqrt(np.mean(error ** 2)))
        check = {"max_abs_prediction_diff": diff, "max_prediction_diff_in_std": scaled,
                 "limit_in_std": MAX_LOGIT_DIFF, "within_tolerance": agree, "val_rmse_onnx": rmse,
                 "val_mae_onnx": float(np.mean(np.abs(error)))}
        target = {"target": {"name": data.spec.target, "standardised_with": {"mean": mean, "std": std},
                             "note": "the graph undoes the standardisation: prediction is in the target's unit"}}
    else:
        rmse, target = None, {}
        check = {"max_abs_logit_diff": diff, "same_prediction": agree,
                 "val_macro_f1_onnx": float(f1_score(data.val.labels, exported.argmax(1), average="macro"))}
    report = OnnxReport(out, diff, agree, len(reference), opset, rmse, data.spec.target, scaled)
    write_json(out.with_suffix(out.suffix + ".json"), {
        "model": record["model"], "data": record["data"], "checkpoint": str(folder), "opset": opset,
        "task": data.task,
        "inputs": {k: {"shape": ["batch", *data.spec.shapes[k]], "dtype": str(v.dtype)}
                   for k, v in data.val.inputs.items()},
        "output": {"name": output, "shape": ["batch", data.spec.n_outputs]}, "classes": list(data.classes), **target,
        "check": {"split": "val", "examples": len(reference), **check},
        "data_options": DataOptions.from_record(record).to_json(), "base": record.get("base"),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__}})
    return report


def describe(report: OnnxReport) -> str:
    """One line: where the model went and what its check found."""
    head = (f"ONNX (opset {report.opset}, dynamic batch) -> {report.path}; checked with onnxruntime on "
            f"{report.total} validation examples: ")
    if report.val_rmse is not None:
        return head + (f"max |prediction difference| {report.max_abs_diff:.2e} ({report.unit or 'target'}, in its "
                       f"unit; {report.max_std_diff:.2e} target standard deviations, limit {MAX_LOGIT_DIFF:g}), "
                       f"val RMSE {report.val_rmse:.4f} from the ONNX model")
    return head + (f"max |logit difference| {report.max_abs_diff:.2e}, same prediction for "
                   f"{report.agree}/{report.total}")

