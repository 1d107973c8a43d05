"""The GPU code path, run on the CPU: mixed float16 with an XLA-compiled multi-step
execution, the training clock, and the model code under the JAX backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np

from components.training.config import training_config
from components.training.recipe import float32_copy
from components.training.train import train
from tests.support.data import REPO_ROOT, learnable_dataset


def test_mixed_float16_with_xla_trains_and_exports_in_float32(tmp_path, capsys):
    settings = training_config("resnet9", epochs=2, batch_size=16,
                               mixed_precision="float16", xla="on", steps_per_execution=2,
                               lr_knots=(0.0, 1.0, 2.0), lr_values=(0.01, 0.05, 0.0),
                               target_accuracy=0.0, seed=0)
    train_data, eval_data = learnable_dataset(64, seed=0), learnable_dataset(32, seed=1)
    try:
        model, history, metrics = train(settings, train_data, eval_data,
                                        str(tmp_path / "run"), str(tmp_path / "backup"))
        # train() builds under its policy and leaves the global one as it found it.
        assert keras.mixed_precision.global_policy().name == "float32"
        exported = float32_copy(model, settings)
    finally:
        keras.mixed_precision.set_global_policy("float32")

    assert metrics["dtype_policy"] == "mixed_float16" and metrics["xla"] is True
    assert all(np.isfinite(history["loss"])) and np.isfinite(metrics["eval_accuracy"])
    assert metrics["steps"] == 2 * 4
    # float32 variables with float16 compute, and dynamic loss scaling on.
    assert {weight.dtype for weight in model.weights} == {"float32"}
    assert model.get_layer("prep_conv").compute_dtype == "float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert float(model.optimizer.dynamic_scale) > 1  # the loss is scaled (from 2**15)

    # The export is the same weights in float32, and answers as the trained model.
    assert exported.get_layer("prep_conv").compute_dtype == "float32"
    for trained, copied in zip(model.get_weights(), exported.get_weights()):
        np.testing.assert_array_equal(trained, copied)
    images = eval_data[0][:8]
    np.testing.assert_allclose(exported.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=2e-2, rtol=2e-2)

    # The clock: compile apart, training-only seconds per epoch, the target's time.
    assert metrics["compile_seconds"] > 0
    assert len(metrics["epoch_train_seconds"]) == 2 and metrics["images_per_second"] > 0
    # Epoch 1 has two executions: the first compiles, the second is timed.
    assert metrics["epoch_train_seconds"][0] > 0 and metrics["epoch_steps"] == [2, 4]
    reached = metrics["time_to_target"]
    assert reached["epoch"] == 1 and reached["target"] == 0.0
    assert reached["wall_seconds"] >= reached["train_seconds"] > 0
    output = capsys.readouterr().out
    assert "mixed_float16, XLA on, 2 step(s) per execution" in output
    assert "img/s (+ compile" in output
    assert "Eval accuracy reached 0.0000 at epoch 1" in output


def test_the_target_is_the_first_epoch_whose_eval_accuracy_reaches_it(tmp_path):
    settings = training_config("resnet9", epochs=3, batch_size=32, lr_knots=(0.0, 1.0, 3.0),
                               lr_values=(0.005, 0.025, 0.0), target_accuracy=0.5, seed=0)
    _, history, metrics = train(settings, learnable_dataset(128, seed=0),
                                learnable_dataset(64, seed=1), str(tmp_path / "run"),
                                str(tmp_path / "backup"))
    reaching = [epoch + 1 for epoch, accuracy in enumerate(history["val_accuracy"])
                if accuracy >= 0.5]
    if reaching:
        assert metrics["time_to_target"]["epoch"] == reaching[0]
        assert metrics["time_to_target"]["eval_accuracy"] == round(
            history["val_accuracy"][reaching[0] - 1], 4)
    else:
        assert metrics["time_to_target"] is None
    # One execution per epoch (4 steps, 16 per execution): only compilation in epoch 1.
    assert metrics["epoch_train_seconds"][0] is None
    assert metrics["epoch_steps"] == [0, 4, 4]  # not the 16 of a full execution
    assert all(seconds > 0 for seconds in metrics["epoch_train_seconds"][1:])


_JAX_TRAINING = """
import json, sys
import keras, numpy as np
from components.training.augment import CifarAugment
from components.training.models import build_model
from components.training.schedule import make_schedule
model = build_model("resnet9", 5e-4, augmentation=CifarAugment(seed=0, name="augment"))
schedule = make_schedule("piecewise_linear", 2, (0, 1, 2), (0.01, 0.05, 0.0))
model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              jit_compile=True)
rng = np.random.default_rng(0)
images = rng.normal(size=(32, 32, 32, 3)).astype("float32")
labels = rng.integers(0, 10, 32)
before = [np.array(w) for w in model.get_weights()]
history = model.fit(images, labels, batch_size=16, epochs=2, verbose=0)
augmented = np.asarray(model.get_layer("augment")(images[:4], training=True))
print(json.dumps({
    "backend": keras.backend.backend(),
    "loss": history.history["loss"],
    "changed": sum(not np.array_equal(a, np.array(b))
                   for a, b in zip(before, model.get_weights())),
    "weights": len(before),
    "steps": int(model.optimizer.iterations),
    "augmented_differs": bool(not np.array_equal(augmented, images[:4])),
    "tensorflow_loaded": any(m.split(".")[0] == "tensorflow" for m in sys.modules),
}))
"""


def test_the_model_code_trains_under_the_jax_backend():
    """ResNet9, its augmentation and the schedule under KERAS_BACKEND=jax (CPU jaxlib),
    in a process that never loads TensorFlow."""
    result = subprocess.run([sys.executable, "-c", _JAX_TRAINING], cwd=REPO_ROOT,
                            env={**os.environ, "KERAS_BACKEND": "jax"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert all(np.isfinite(report["loss"])) and report["steps"] == 4
    # Every trainable weight moved (BatchNorm's moving statistics too).
    assert report["changed"] == report["weights"]
    assert report["augmented_differs"]
    assert not report["tensorflow_loaded"]


def test_the_fast_recipe_trains_in_mixed_float16_under_xla(tmp_path):
    """airbench94's step (lookahead, the stopped whitening bias, the alternating flip)
    compiles under XLA with loss scaling, as on a GPU."""
    settings = training_config("airbench94", epochs=2.75, batch_size=16,
                               lr_knots=(0.0, 0.5, 2.75), mixed_precision="float16",
                               xla="on", whiten_bias_epochs=1.0, eval_every_epoch=False,
                               seed=0)
    train_data, eval_data = learnable_dataset(64, seed=0), learnable_dataset(32, seed=1)
    try:
        model, history, metrics = train(settings, train_data, eval_data,
                                        str(tmp_path / "run"), str(tmp_path / "backup"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert metrics["xla"] is True and metrics["steps"] == 11
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(np.isfinite(history["loss"])) and np.isfinite(metrics["eval_accuracy"])
    # The model ends on the lookahead's averages (last taken at step 10), through the
    # loss scaling.
    averages = model.optimizer.inner_optimizer.averages
    for weight, average in zip(model.trainable_variables, averages):
        np.testing.assert_array_equal(weight.numpy(), average.numpy())


_JAX_FAST_RECIPE = """
import json
import numpy as np
from benchmarks.train_recipe import _fit_with_jax
from components.training.config import training_config
rng = np.random.default_rng(0)
data = {"train": (rng.normal(size=(64, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 64)),
        "test": (rng.normal(size=(16, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 16))}
settings = training_config("airbench94", epochs=2.75, batch_size=16, lr_knots=(0, 0.5, 2.75),
                           whiten_bias_epochs=1.0, seed=0)
model, history, metrics = _fit_with_jax(settings, data)
optimizer = model.optimizer
print(json.dumps({
    "steps": int(optimizer.iterations), "loss": history["loss"],
    "epoch_steps": metrics["epoch_steps"],
    "on_averages": all(np.array_equal(np.asarray(weight), np.asarray(average))
                       for weight, average in zip(model.trainable_variables,
                                                  optimizer.averages)),
    "whitening": float(np.abs(np.asarray(model.get_layer("whiten").kernel)).max()),
    "tta_accuracy": metrics["eval_accuracy_tta_flip"],
}))
"""


def test_the_gpu_kits_fast_recipe_trains_under_the_jax_backend():
    """benchmarks/train_recipe.py --recipe fast under KERAS_BACKEND=jax, as the GPU kit
    runs it: whitening from the data, one fit per epoch with the alternating flip, the
    last epoch a part, and the model on the lookahead's averages (last at step 10 of 11).
    (keras.utils.set_random_seed imports TensorFlow where it is installed, to seed it
    too; the GPU machines have none.)"""
    result = subprocess.run([sys.executable, "-c", _JAX_FAST_RECIPE], cwd=REPO_ROOT,
                            env={**os.environ, "KERAS_BACKEND": "jax"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["steps"] == 11 and len(report["loss"]) == 3
    assert all(np.isfinite(report["loss"])) and 0 <= report["tta_accuracy"] <= 1
    assert report["on_averages"] and report["whitening"] > 0.1
