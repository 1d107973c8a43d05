"""Shared fixtures: small CIFAR-10 datasets in the official layouts."""

from __future__ import annotations

import os
import shutil

from components.cpu_runtime import apply_cpu_training_defaults

# The runtime `python -m pipeline run` trains with, set before TensorFlow is imported;
# child processes (the CLI, training workers, servers) inherit it.
apply_cpu_training_defaults()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from components import cifar10_format  # noqa: E402
from serving.process import EmbeddedServerProcess  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_SAMPLE = os.path.join(os.path.dirname(REPO_ROOT), "shared", "cifar10-sample")


def random_batch(count: int, seed: int) -> tuple:
    """Images with a per-channel offset (so channel order is visible) and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 200, size=(count,) + cifar10_format.IMAGE_SHAPE)
    images = (images + np.array([50, 20, 0])).astype(np.uint8)
    labels = rng.integers(0, cifar10_format.NUM_CLASSES, size=count)
    return images, labels


def write_small_dataset(root: str, layout: str, train_sizes=(30, 30), test_size=20,
                        seed: int = 0) -> dict:
    """Writes train batches and a test batch; returns the arrays written."""
    train = [random_batch(size, seed + i) for i, size in enumerate(train_sizes)]
    test = random_batch(test_size, seed + 100)
    cifar10_format.write_dataset(root, layout, train, test)
    return {"train": train, "test": test}


@pytest.fixture
def small_python_dataset(tmp_path):
    root = str(tmp_path / "cifar10")
    arrays = write_small_dataset(root, cifar10_format.PYTHON_LAYOUT)
    return root, arrays


def sample_available() -> bool:
    return os.path.isdir(os.path.join(SHARED_SAMPLE, "cifar-10-batches-py"))


@pytest.fixture
def two_layout_root(tmp_path):
    """A directory holding the same images in both official layouts.

    The real 5,085-image sample when ../shared is beside the checkout, else the same
    structure generated here.
    """
    if sample_available():
        return SHARED_SAMPLE
    root = str(tmp_path / "both-layouts")
    arrays = write_small_dataset(root, cifar10_format.PYTHON_LAYOUT, train_sizes=(40,) * 5)
    cifar10_format.write_dataset(root, cifar10_format.BINARY_LAYOUT, arrays["train"], None)
    return root


@pytest.fixture
def real_or_synthetic_dataset(tmp_path):
    """Train/test data in the python layout: the real sample (batch 5 held out as the
    test batch) when present, else a synthetic one. Returns (root, is_real)."""
    root = tmp_path / "dataset"
    if sample_available():
        layout_dir = root / "cifar-10-batches-py"
        layout_dir.mkdir(parents=True)
        source_dir = os.path.join(SHARED_SAMPLE, "cifar-10-batches-py")
        for number in range(1, 5):
            os.symlink(os.path.join(source_dir, f"data_batch_{number}"),
                       layout_dir / f"data_batch_{number}")
        os.symlink(os.path.join(source_dir, "data_batch_5"), layout_dir / "test_batch")
        return str(root), True
    write_small_dataset(str(root), cifar10_format.PYTHON_LAYOUT, train_sizes=(60,) * 4,
                        test_size=60)
    return str(root), False


def copy_tree(source: str, target: str) -> str:
    shutil.copytree(source, target, symlinks=False)
    return target


def first_images(source, pattern: str, limit: int) -> np.ndarray:
    """The first `limit` images of each file a split pattern matches, in file order."""
    from components import cifar10_source
    return np.concatenate([cifar10_format.read_batch(path, limit).images
                           for path in cifar10_source.matching_files(source, pattern)])


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """The smoke profile run once, every component, on 90 + 30 images."""
    import pipeline_config
    from pipeline import local_runner

    tmp_path = tmp_path_factory.mktemp("e2e")
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.BINARY_LAYOUT, train_sizes=(40, 40, 40),
                        test_size=50, seed=11)
    config = pipeline_config.load("smoke", (
        f"data.data_dir={root}", f"output_dir={tmp_path / 'out'}",
        "data.images_per_file=30", "training.batch_size=32"))
    return config, local_runner.run(config)


def learnable_dataset(count: int, seed: int) -> tuple:
    """Z-scored float32 images whose class is visible through crops, flips and cutout:
    each class has its own colour and stripe frequency, under noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, cifar10_format.NUM_CLASSES, count)
    palette = np.random.default_rng(1234).normal(size=(cifar10_format.NUM_CLASSES, 3))
    columns = np.arange(32)
    stripes = np.sin(columns[None, :] * (labels[:, None] + 1) * np.pi / 16)
    images = (palette[labels][:, None, None, :] + 0.5 * stripes[:, None, :, None]
              + rng.normal(scale=0.8, size=(count, 32, 32, 3)))
    return images.astype(np.float32), labels.astype(np.int64)


@pytest.fixture(scope="session")
def pushed_model(pipeline_run):
    """(model base path, version, version dir) the smoke run's Pusher wrote."""
    config, summary = pipeline_run
    version = summary["decision"]["pushed_version"]
    return (config.serving_model_base_path, int(version),
            os.path.join(config.serving_model_base_path, version))


@pytest.fixture(scope="session")
def served(pushed_model):
    """One embedded server over the smoke run's model base path, for the API tests."""
    server = EmbeddedServerProcess(pushed_model[0])
    yield server
    server.stop()


def png_images(count: int) -> list:
    """PNG bytes of real CIFAR-10 images (the shared sample) or synthetic ones."""
    from components.cifar10_example_gen import encode_png
    if sample_available():
        pixels = cifar10_format.read_batch(
            os.path.join(SHARED_SAMPLE, "cifar-10-batches-py", "data_batch_5"), count).images
    else:
        pixels = random_batch(count, seed=5)[0]
    return [encode_png(image) for image in pixels]


def push(executor_class, model_uri: str, base_path: str, work_dir: str, name: str):
    """Runs a Pusher executor, as the Pusher component does, on a Model artifact at
    `model_uri` (holding `Format-Serving/`) with a BLESSED blessing; returns the
    PushedModel artifact it recorded."""
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = os.path.join(work_dir, f"blessing-{name}")
    os.makedirs(blessing.uri)
    open(os.path.join(blessing.uri, "BLESSED"), "w").close()
    blessing.set_int_custom_property("blessed", 1)
    model = standard_artifacts.Model()
    model.uri = model_uri
    pushed = standard_artifacts.PushedModel()
    pushed.uri = os.path.join(work_dir, f"pushed-{name}")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base_path))
    executor_class().Do({"model": [model], "model_blessing": [blessing]},
                        {"pushed_model": [pushed]},
                        {"push_destination": proto_utils.proto_to_json(destination)})
    return pushed
