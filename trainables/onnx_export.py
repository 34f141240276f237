"""``spectune export --onnx DIR``: a saved model as ONNX, checked against PyTorch on the validation split.

The checkpoint folder is what ``spectune train --save DIR`` writes (``make train`` saves the retrained
winner to ``runs/best-model``): its ``config.json`` names the pair, the resolved config, the data
scaling and, for a fine-tuned model, the base and its sha256. The model is rebuilt from it (LoRA
adapters merged into their layers, so the graph is a plain network), exported with PyTorch's
exporter with a dynamic batch axis, then run with onnxruntime on every validation example; the
largest logit difference and the prediction agreement are printed and written beside the model
with the opset, the input spec and the class order. Nothing is written unless the check passes.
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
from results.records import DataOptions
from trainables.checkpoint import load_trainable_state, read_checkpoint
from trainables.errors import OptionError
from trainables.pair import Pair, load_data
from trainables.pretrained import check_same_base

# Beyond this the exported graph is not the same function; float32 reordering stays near 1e-5.
MAX_LOGIT_DIFF = 1e-3


@dataclass(frozen=True)
class OnnxReport:
    path: Path
    max_abs_diff: float
    agree: int
    total: int
    opset: int


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
    names = list(data.val.inputs)
    example = {k: torch.from_numpy(np.ascontiguousarray(v[:2])) for k, v in data.val.inputs.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch_dim = torch.export.Dim("batch")
            program = torch.onnx.export(model, (), None, kwargs=example, input_names=names, output_names=["logits"],
                                        dynamic_shapes={k: {0: batch_dim} for k in names}, dynamo=True,
                                        verbose=False)
        graph = program.model_proto
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
                onnx_logits.append(session.run(["logits"], part)[0])
        reference, exported = np.concatenate(torch_logits), np.concatenate(onnx_logits)
        diff = float(np.abs(reference - exported).max())
        agree = int((reference.argmax(1) == exported.argmax(1)).sum())
        if diff > MAX_LOGIT_DIFF:
            raise OptionError(f"the ONNX model's logits differ from PyTorch's by up to {diff:.2e} on the validation "
                             f"split (limit {MAX_LOGIT_DIFF:g}); not written.")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    from sklearn.metrics import f1_score

    report = OnnxReport(out, diff, agree, len(reference), opset)
    write_json(out.with_suffix(out.suffix + ".json"), {
        "model": record["model"], "data": record["data"], "checkpoint": str(folder), "opset": opset,
        "inputs": {k: {"shape": ["batch", *data.spec.shapes[k]], "dtype": str(v.dtype)}
                   for k, v in data.val.inputs.items()},
        "output": {"name": "logits", "shape": ["batch", data.n_classes]}, "classes": list(data.classes),
        "check": {"split": "val", "examples": len(reference), "max_abs_logit_diff": diff,
                  "same_prediction": agree,
                  "val_macro_f1_onnx": float(f1_score(data.val.labels, exported.argmax(1), average="macro"))},
        "data_options": DataOptions.from_record(record).to_json(), "base": record.get("base"),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__}})
    return report


def describe(report: OnnxReport) -> str:
    return (f"ONNX (opset {report.opset}, dynamic batch) -> {report.path}; checked with onnxruntime on "
            f"{report.total} validation examples: max |logit difference| {report.max_abs_diff:.2e}, same "
            f"prediction for {report.agree}/{report.total}")

