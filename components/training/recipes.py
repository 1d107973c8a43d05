"""Every training recipe's numbers, one screen each: the value of each `training.*`
setting that belongs to the recipe, and where it comes from. A profile picks a recipe
(`pipeline_config.py`); `--set training.<field>=...` still reaches each field.

What belongs to the machine (device, precision, XLA, steps per execution,
distribution) and to the run (seed, evaluation each epoch) is not here: those are
`TrainingConfig`'s own defaults (components/training/config.py), the same for every
recipe.

No TensorFlow, no Keras: the pipeline's config and CLI import this.
"""

from __future__ import annotations

# cifar10-fast's ResNet9 (github davidcpage/cifar10-fast, dawn.py and core.py), 94% in
# 24 epochs over its 50 measured runs. The decay is PyTorch SGD's coupled weight decay
# on the mean loss (cifar10-fast sums the loss and scales rate and decay by the batch:
# the same steps).
RESNET9 = dict(
    model="resnet9",
    epochs=24,                          # dawn.py: epochs=24
    batch_size=512,                     # dawn.py: batch_size=512
    lr_schedule="piecewise_linear",     # dawn.py: PiecewiseLinear([0, 5, epochs], ...)
    lr_knots=(0.0, 5.0, 24.0),          # ... evaluated per step
    lr_values=(0.0, 0.4, 0.0),          # dawn.py: [0, 0.4, 0]
    optimizer="sgd",                    # Keras SGD, decay as the model's L2 penalty
    momentum=0.9,                       # core.py: SGD(momentum=0.9, nesterov=True)
    nesterov=True,
    weight_decay=5e-4,                  # dawn.py: weight_decay=5e-4*batch_size on the sum
    bias_lr_scale=1.0,
    label_smoothing=0.0,
    loss_reduction="mean",
    lookahead_every=0,
    lookahead_decay=0.0,
    whiten_bias_epochs=0.0,
    kernel_initializer="torch_default",  # PyTorch's default init, as cifar10-fast keeps
    max_steps=None,
    pad=4,                              # dawn.py: Crop(32, 32) after pad(4), reflect
    flip=True,                          # FlipLR()
    alternating_flip=False,
    cutout=8,                           # Cutout(8, 8)
    tta_flip=True,                      # cifar10-fast's test: the mirror image too
    tta_translate=0,
)


def he_et_al(model: str) -> dict:
    """He et al.'s CIFAR ResNets and plain nets ("Deep Residual Learning", section 4.2):
    SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, the rate / 10 at 32k and 48k
    steps, 64k steps, pad-crop + flip, no test-time augmentation."""
    return dict(
        model=model,
        epochs=164,                     # 64k steps of 128 over 50k images
        batch_size=128,
        lr_schedule="step",             # step boundaries, not epochs
        lr_knots=(32000.0, 48000.0),
        lr_values=(0.1, 0.01, 0.001),
        optimizer="sgd",
        momentum=0.9,
        nesterov=False,
        weight_decay=1e-4,
        bias_lr_scale=1.0,
        label_smoothing=0.0,
        loss_reduction="mean",
        lookahead_every=0,
        lookahead_decay=0.0,
        whiten_bias_epochs=0.0,
        kernel_initializer="torch_default",  # unused: the paper's he_normal is the model's
        max_steps=64000,
        pad=4,
        flip=True,
        alternating_flip=False,
        cutout=0,
        tta_flip=False,
        tta_translate=0,
    )


# airbench94 (github KellerJordan/cifar10-airbench, legacy/airbench94.py, its `hyp`
# dict and main()): 94.01% mean over 1,000 runs. Its rate and decay are per 1,024
# examples over a summed loss; PyTorch's SGD receives them as below.
_AIRBENCH_MOMENTUM = 0.85                                      # hyp opt.momentum
_AIRBENCH_KILOSTEP_SCALE = 1024 * (1 + 1 / (1 - _AIRBENCH_MOMENTUM))  # main(): kilostep_scale
_AIRBENCH_RATE = 11.5 / _AIRBENCH_KILOSTEP_SCALE                # hyp opt.lr=11.5, lr = lr / scale
_AIRBENCH_BATCH = 1024                                         # hyp opt.batch_size
_AIRBENCH_EPOCHS = 9.9                                         # hyp opt.train_epochs
AIRBENCH94 = dict(
    model="airbench94",                 # make_net(): whitening, 3 blocks 64/256/256
    epochs=_AIRBENCH_EPOCHS,            # ceil(9.9 x steps per epoch) steps
    batch_size=_AIRBENCH_BATCH,
    # get_lr(): from 0.2x to 1x over the first 23% of the steps, then down to 0.07x.
    # The knot is at 0.23 x 9.9 epochs in steps, where airbench takes int() of it (109
    # of 476 steps against 109.3 here).
    lr_schedule="piecewise_linear",
    lr_knots=(0.0, 0.23 * _AIRBENCH_EPOCHS, _AIRBENCH_EPOCHS),
    lr_values=(0.2 * _AIRBENCH_RATE, _AIRBENCH_RATE, 0.07 * _AIRBENCH_RATE),
    optimizer="torch_sgd",              # torch.optim.SGD: coupled decay, per-group rates
    momentum=_AIRBENCH_MOMENTUM,
    nesterov=True,                      # SGD(..., nesterov=True)
    # PyTorch's weight_decay of the main group: wd / lr, where wd = 0.0153 x batch /
    # scale (hyp opt.weight_decay=0.0153); the BatchNorm biases' group gets it / 64.
    weight_decay=0.0153 * _AIRBENCH_BATCH / 11.5,
    bias_lr_scale=64.0,                 # hyp opt.bias_scaler: BatchNorm biases' rate
    label_smoothing=0.2,                # hyp opt.label_smoothing
    loss_reduction="sum",               # loss_fn(outputs, labels).sum()
    lookahead_every=5,                  # if current_steps % 5 == 0: lookahead update
    lookahead_decay=0.95,               # alpha_schedule = 0.95**5 * (step / total)**3
    whiten_bias_epochs=3.0,             # hyp opt.whiten_bias_epochs
    kernel_initializer="torch_default",  # Conv/Linear defaults, then Dirac taps
    max_steps=None,
    pad=2,                              # hyp aug.translate=2 (reflect-pad, random crop)
    flip=True,                          # hyp aug.flip
    alternating_flip=True,              # random in epoch 1, then every other epoch
    cutout=0,
    tta_flip=True,                      # hyp net.tta_level=2: the mirror ...
    tta_translate=1,                    # ... and one-pixel shifts (reflect pad 1)
)

RECIPES = {"resnet9": RESNET9, "airbench94": AIRBENCH94,
           **{f"{kind}{depth}": he_et_al(f"{kind}{depth}")
              for kind in ("resnet", "plain") for depth in (20, 56, 110)}}
