"""Fixtures shared across the test tree: small datasets, and one smoke pipeline run
whose pushed model the training, export and serving tests reuse.

Tests marked `slow` run whole pipelines, orchestrators or server processes; `make
test-fast` leaves them out (see the README)."""

from __future__ import annotations

import os

from components.training.runtime import prepare_tensorflow

# The runtime `python -m pipeline run` trains with, set before TensorFlow is imported;
# child processes (the CLI, training workers, servers) inherit it.
prepare_tensorflow()

import pytest  # noqa: E402

from components.data import cifar10_format  # noqa: E402
from tests.support.data import SHARED_SAMPLE, sample_available, write_small_dataset  # noqa: E402
from tests.support.server_process import SERVED_LIMITS, EmbeddedServerProcess  # noqa: E402


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


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """The smoke profile run once, every component (the TFLite variants too), on 90 + 30
    images, its artifacts in a folder of their own."""
    import pipeline_config
    from pipeline import local_runner

    tmp_path = tmp_path_factory.mktemp("e2e")
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.BINARY_LAYOUT, train_sizes=(40, 40, 40),
                        test_size=50, seed=11)
    config = pipeline_config.load("smoke", (
        f"data.data_dir={root}", f"output_dir={tmp_path / 'out'}",
        # The artifacts apart from the metadata store and the run lock, as on gs://.
        f"artifacts_dir={tmp_path / 'artifacts'}",
        "data.images_per_file=30", "training.batch_size=32",
        "tflite.variants=float16,int8"))
    return config, local_runner.run(config)


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
    server = EmbeddedServerProcess(pushed_model[0], extra_args=(
        "--read-timeout-seconds", str(SERVED_LIMITS["read_timeout_s"]),
        "--max-connections", str(SERVED_LIMITS["max_connections"]),
        "--max-batch-size", str(SERVED_LIMITS["max_batch_size"])))
    yield server
    server.stop()


# Fixtures that run the smoke pipeline: a test that needs one is slow whatever it checks.
_PIPELINE_FIXTURES = {"pipeline_run", "pushed_model", "served"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
