"""The reference point for training throughput: a plain PyTorch ResNet9 training step
(the same layer list as components/training/models/resnet9.py; SGD Nesterov with weight decay;
no augmentation) on random data, on this machine's CPU.

Run by benchmarks/train_throughput.py under an interpreter that has PyTorch
(`--torch-python`), so both figures come from the same run. Prints one JSON line.

  python benchmarks/torch_resnet9_step.py --batch-size 128 --steps 6
"""

from __future__ import annotations

import argparse
import json
import time


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = resnet9(torch, nn)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    images = torch.randn(args.batch_size, 3, 32, 32)
    labels = torch.randint(0, 10, (args.batch_size,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()

    for _ in range(2):  # warm-up
        step()
    # The median of three timed rounds, as for the TensorFlow variants.
    rounds = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        rounds.append(time.perf_counter() - started)
    seconds = sorted(rounds)[1]
    print(json.dumps({"framework": f"pytorch {torch.__version__}",
                      "threads": torch.get_num_threads(), "batch_size": args.batch_size,
                      "images_per_second": round(args.batch_size * args.steps / seconds, 1)}))


if __name__ == "__main__":
    main()
