"""Progress lines go to standard output as it is when each line is written."""

from __future__ import annotations

import io
import time

import pytest

from components import console


def test_each_report_is_one_line_on_the_current_stdout(capsys):
    console.report("Data: 90 train + 30 test images checked")
    console.report("Training resnet9 on 90 images")
    assert capsys.readouterr().out.splitlines() == [
        "Data: 90 train + 30 test images checked", "Training resnet9 on 90 images"]


def test_a_report_can_go_to_a_given_stream():
    stream = io.StringIO()
    console.report("epoch 1/2", stream)
    assert stream.getvalue() == "epoch 1/2\n"


def test_a_transfer_rewrites_one_line_on_stderr_and_ends_it_when_finished(capsys):
    started = time.monotonic() - 2
    console.transfer("Downloading x.tar.gz", 2**20, 4 * 2**20, started)
    console.transfer("Downloaded x.tar.gz", 4 * 2**20, 4 * 2**20, started, finished=True)
    err = capsys.readouterr().err
    assert err.startswith("\rDownloading x.tar.gz: 1.0/4.0 MiB (25%")
    assert "\rDownloaded x.tar.gz: 4.0/4.0 MiB (100%" in err and err.endswith("\n")
    assert err.count("\n") == 1


@pytest.mark.parametrize("error_type", [
    "components.data.cifar10_format.Cifar10DataError",
    "components.data.source.ChecksumError",
    "components.monitoring.served_traffic.RequestLogError",
    "components.scoring.unlabeled_images.ScoringInputError",
    "components.training.device.TrainingDeviceError",
    "pipeline_config.ConfigError",
    "pipeline.monitor.MonitorError",
])
def test_every_input_error_is_a_user_error(error_type):
    """The command line turns a UserError into its message and exit 2; an input error
    of another type would print a traceback and exit 1."""
    import importlib

    module_name, _, class_name = error_type.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module_name), class_name),
                      console.UserError)
