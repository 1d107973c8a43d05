"""The reference point for training throughput: a plain PyTorch ResNet9 training step
(the same layer list as components/training/models/resnet9.py; SGD Nesterov with weight decay;
no augmentation) on random data, on this machine's CPU, in each of PyTorch's CPU settings:
- `float32`;
- `channels_last` (NHWC memory format, which oneDNN's convolutions prefer);
- `bf16` and `bf16_channels_last` (bfloat16 autocast), where the CPU has bfloat16
  instructions (avx512_bf16 or AMX in /proc/cpuinfo).
The fastest of them is PyTorch at its best on this CPU: the reference to beat.

Run by benchmarks/train_throughput.py under an interpreter that has PyTorch
(`--torch-python`), so both figures come from the same run. Prints one JSON line.

  python benchmarks/torch_resnet9_step.py --batch-size 128 --steps 6
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from components.training.runtime import cpu_has_bfloat16  # noqa: E402 (no TensorFlow)


def conv_bn(torch_nn, channels_in: int, channels_out: int):
    return torch_nn.Sequential(
        torch_nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        torch_nn.BatchNorm2d(channels_out, eps=1e-5, momentum=0.1),
        torch_nn.ReLU())


def resnet9(torch, torch_nn):
    class Residual(torch_nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.body = torch_nn.Sequential(conv_bn(torch_nn, channels, channels),
                                            conv_bn(torch_nn, channels, channels))

        def forward(self, x):
            return x + self.body(x)

    class Scale(torch_nn.Module):
        def forward(self, x):
            return x * 0.125

    return torch_nn.Sequential(
        conv_bn(torch_nn, 3, 64),
        conv_bn(torch_nn, 64, 128), torch_nn.MaxPool2d(2), Residual(128),
        conv_bn(torch_nn, 128, 256), torch_nn.MaxPool2d(2),
        conv_bn(torch_nn, 256, 512), torch_nn.MaxPool2d(2), Residual(512),
        torch_nn.AdaptiveMaxPool2d(1), torch_nn.Flatten(),
        torch_nn.Linear(512, 10, bias=False), Scale())


def images_per_second(torch, nn, batch_size: int, steps: int, channels_last: bool,
                      bf16: bool) -> float:
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = resnet9(torch, nn).to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    images = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch_size,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(images).float(), labels)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up
        step()
    # The median of three timed rounds, as for the TensorFlow variants.
    rounds = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        rounds.append(time.perf_counter() - started)
    return round(batch_size * steps / sorted(rounds)[1], 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    import torch
    from torch import nn

    settings = {"float32": (False, False), "channels_last": (True, False)}
    if cpu_has_bfloat16():
        settings.update(bf16=(False, True), bf16_channels_last=(True, True))
    rates = {name: images_per_second(torch, nn, args.batch_size, args.steps, *setting)
             for name, setting in settings.items()}
    best = max(rates, key=rates.get)
    print(json.dumps({"framework": f"pytorch {torch.__version__}",
                      "threads": torch.get_num_threads(), "batch_size": args.batch_size,
                      "settings": rates, "best_setting": best,
                      "images_per_second": rates[best],
                      "float32_images_per_second": rates["float32"]}))


if __name__ == "__main__":
    main()
