"""The reference point for the full training recipe: cifar10-fast's ResNet9 trained end to
end in plain PyTorch, with the recipe of the project's Keras trainer
(components/training/config.py defaults): the same layer list, SGD Nesterov with coupled
weight decay, the per-step piecewise-linear rate, and the same augmentation as
components/training/augment.py (reflect-pad + crop, flip, one cutout square), batched
on the device. Data comes from benchmarks/recipe_data.py, as for the Keras side.

Run by benchmarks/train_recipe.py under an interpreter that has PyTorch. Progress goes
to stderr, one line per epoch; the last stdout line is one JSON object.

  python benchmarks/torch_resnet9_train.py --data ../shared/cifar10-jpeg/cifar10_jpeg.npz \
      [--epochs 24] [--batch-size 512] [--seed 0] [--train-limit N] [--test-limit N] \
      [--target-accuracy 0.94] [--lr-knots 0,5,24] [--lr-values 0,0.4,0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import numpy as np

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
# recipe_data imports components.data for the official layouts: it needs the repo root.
for _path in (BENCHMARKS_DIR, os.path.dirname(BENCHMARKS_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import recipe_data  # noqa: E402
from torch_resnet9_step import resnet9  # noqa: E402

PAD, CUTOUT, EVAL_BATCH, WARMUP_STEPS = 4, 8, 1000, 5


def floats(text: str) -> list:
    return [float(part) for part in text.split(",")]


def augment(torch, images, pad: int = PAD, cutout: int = CUTOUT):
    """NCHW batch -> reflect-pad + random crop, flip with prob 1/2, one zero square that
    lies fully inside the image; each image its own draws, all as batched tensor ops."""
    batch, channels, height, width = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="reflect")
    # Crop: gather the rows, then the columns, at each image's own offset.
    rows = torch.randint(0, 2 * pad + 1, (batch, 1), device=device) + \
        torch.arange(height, device=device)
    cols = torch.randint(0, 2 * pad + 1, (batch, 1), device=device) + \
        torch.arange(width, device=device)
    cropped = padded.gather(2, rows[:, None, :, None].expand(
        batch, channels, height, width + 2 * pad))
    cropped = cropped.gather(3, cols[:, None, None, :].expand(batch, channels, height, width))
    flip = torch.rand(batch, 1, 1, 1, device=device) < 0.5
    flipped = torch.where(flip, cropped.flip(3), cropped)
    # Inputs are Z-scored, so zeros are the channel means.
    top = torch.randint(0, height - cutout + 1, (batch, 1), device=device)
    left = torch.randint(0, width - cutout + 1, (batch, 1), device=device)
    row_index = torch.arange(height, device=device)[None, :]
    col_index = torch.arange(width, device=device)[None, :]
    in_rows = (row_index >= top) & (row_index < top + cutout)
    in_cols = (col_index >= left) & (col_index < left + cutout)
    square = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return flipped.masked_fill(square, 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--holdout", type=int, default=0)
    parser.add_argument("--target-accuracy", type=float, default=0.94)
    parser.add_argument("--lr-knots", type=floats, default=[0.0, 5.0, 24.0])
    # cifar10-fast's: PiecewiseLinear([0, 5, 24], [0, 0.4, 0]), per step.
    parser.add_argument("--lr-values", type=floats, default=[0.0, 0.4, 0.0])
    args = parser.parse_args()
    if len(args.lr_knots) != len(args.lr_values) or len(args.lr_knots) < 2:
        parser.error("--lr-knots and --lr-values need the same length, at least 2")

    import torch
    from torch import nn

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    on_cuda = torch.cuda.is_available()
    device = torch.device("cuda" if on_cuda else "cpu")
    memory_format = torch.channels_last if on_cuda else torch.contiguous_format
    if on_cuda:
        torch.backends.cudnn.benchmark = True

    loaded = time.perf_counter()
    data = recipe_data.load(args.data, args.train_limit, args.test_limit, args.holdout)
    print(f"data: {len(data['train'][1])} train, {len(data['test'][1])} test images from "
          f"{data['source']} ({time.perf_counter() - loaded:.1f}s)", file=sys.stderr)

    def to_device(images, labels):
        # NHWC -> an NCHW view; held once on the device (float16 storage on CUDA).
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
        tensor = tensor.to(device, torch.float16 if on_cuda else torch.float32)
        return (tensor.contiguous(memory_format=memory_format),
                torch.from_numpy(labels).to(device))

    train_images, train_labels = to_device(*data["train"])
    test_images, test_labels = to_device(*data["test"])
    steps_per_epoch = len(train_labels) // args.batch_size  # the last partial batch dropped
    if steps_per_epoch == 0:
        raise SystemExit(f"{len(train_labels)} train images: fewer than one batch")

    model = resnet9(torch, nn).to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr_values[0], momentum=0.9,
                                nesterov=True, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=on_cuda)

    def autocast():
        return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=on_cuda)

    def synced_clock() -> float:
        if on_cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def train_step(indices, step: int):
        # The rate of this step, as the Keras schedule gives it at optimizer.iterations.
        rate = float(np.interp(step / steps_per_epoch, args.lr_knots, args.lr_values))
        for group in optimizer.param_groups:
            group["lr"] = rate
        images = augment(torch, train_images[indices]).contiguous(memory_format=memory_format)
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.cross_entropy(model(images).float(), train_labels[indices])
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    def evaluate(tta: bool = False) -> float:
        model.eval()
        correct = 0
        with torch.no_grad(), autocast():
            for start in range(0, len(test_labels), EVAL_BATCH):
                images = test_images[start:start + EVAL_BATCH]
                logits = model(images).float()
                if tta:
                    logits = (logits + model(images.flip(3)).float()) / 2
                correct += (logits.argmax(1) == test_labels[start:start + EVAL_BATCH]).sum()
        model.train()
        return correct.item() / len(test_labels)

    epochs, warmup_seconds, time_to_target, train_total, step = [], None, None, 0.0, 0
    training_started = synced_clock()
    for epoch in range(1, args.epochs + 1):
        permutation = torch.randperm(len(train_labels), device=device)
        loss_sum = torch.zeros((), device=device)
        epoch_started = synced_clock()
        for index in range(steps_per_epoch):
            loss_sum += train_step(
                permutation[index * args.batch_size:(index + 1) * args.batch_size], step)
            step += 1
            # The first steps include cuDNN's autotuning: reported on their own.
            if epoch == 1 and index + 1 == min(WARMUP_STEPS, steps_per_epoch):
                warmup_seconds = synced_clock() - epoch_started
        train_seconds = synced_clock() - epoch_started
        train_total += train_seconds
        accuracy = evaluate()
        loss = loss_sum.item() / steps_per_epoch
        images_per_second = steps_per_epoch * args.batch_size / train_seconds
        epochs.append({"epoch": epoch, "train_seconds": round(train_seconds, 4),
                       "images_per_second": round(images_per_second, 1),
                       "eval_accuracy": round(accuracy, 5), "loss": round(loss, 5)})
        print(f"epoch {epoch}/{args.epochs} loss={loss:.4f} eval_accuracy={accuracy:.4f} "
              f"train {train_seconds:.2f}s {images_per_second:.0f} img/s", file=sys.stderr)
        if time_to_target is None and accuracy >= args.target_accuracy:
            time_to_target = {"target": args.target_accuracy, "epoch": epoch,
                              "eval_accuracy": round(accuracy, 5),
                              "train_seconds": round(train_total, 4),
                              "wall_seconds": round(time.perf_counter() - training_started, 4)}

    print(json.dumps({
        "framework": f"pytorch {torch.__version__}",
        "device": torch.cuda.get_device_name() if on_cuda else "CPU",
        "dtype": "float16 autocast, channels_last" if on_cuda else "float32",
        "seed": args.seed, "batch_size": args.batch_size, "epochs": epochs,
        "warmup_seconds": None if warmup_seconds is None else round(warmup_seconds, 4),
        "train_only_seconds": round(train_total, 4),
        "images_per_second": round(step * args.batch_size / train_total, 1)
        if train_total else None,
        "time_to_target": time_to_target,
        "final_accuracy": epochs[-1]["eval_accuracy"] if epochs else None,
        "final_accuracy_tta": round(evaluate(tta=True), 5),
        "train_images": len(train_labels), "test_images": len(test_labels)}))


if __name__ == "__main__":
    main()
