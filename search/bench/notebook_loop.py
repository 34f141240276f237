"""The seed notebook's training loop, as a user of the notebook would write it: the benchmark's
reference point, never used for real training.

Differences from the toolkit's recipe, on purpose: a ``DataLoader`` over CPU tensors (each batch
copied to the GPU), fp16 autocast with a ``GradScaler``, ``.item()`` on every batch (a host
sync), and macro-F1 from scikit-learn on CPU predictions.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainables.config import Recipe
from trainables.data import Splits
from trainables.recipe import build_scheduler, make_criterion, seed_everything


def notebook_train(model: nn.Module, data: Splits, recipe: Recipe, device: torch.device,
                   epochs: int | None = None) -> tuple[float, list[float]]:
    """Train like the notebook's ``main()`` (validation only); return (best val macro-F1, epoch seconds)."""
    seed_everything(recipe.seed)
    model = model.to(device)
    train_loader = DataLoader(TensorDataset(torch.from_numpy(data.train.inputs["x"]), torch.from_numpy(data.train.labels)),
                              batch_size=recipe.batch_size, shuffle=True, num_workers=0)
    val_loader = DataLoader(TensorDataset(torch.from_numpy(data.val.inputs["x"]), torch.from_numpy(data.val.labels)),
                            batch_size=recipe.batch_size, shuffle=False, num_workers=0)
    criterion = make_criterion(data, recipe, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = build_scheduler(optimizer, recipe)
    cuda = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    best, times = 0.0, []
    for _ in range(epochs or recipe.epochs):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.train()
        running = 0.0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            running += loss.item()
        model.eval()
        preds, targets = [], []
        with torch.no_grad():
            for x, y in val_loader:
                x, y = x.to(device), y.to(device)
                with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
                    out = model(x)
                    criterion(out, y).item()
                preds.extend(out.argmax(dim=1).cpu().numpy())
                targets.extend(y.cpu().numpy())
        best = max(best, f1_score(np.asarray(targets), np.asarray(preds), average="macro"))
        if scheduler is not None:
            scheduler.step()
        times.append(time.perf_counter() - start)
    return best, times
