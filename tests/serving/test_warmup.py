"""Warmup replay in the embedded server: a version's warmup requests run through the
model before the version is AVAILABLE; a warmup file that cannot be replayed fails
the load (counted), and the previous version keeps serving, as in TF Serving."""

from __future__ import annotations

import os
import threading
import time

import pytest

from components.contract import WARMUP_REQUESTS_FILE
from serving.model_store import AVAILABLE, END, LOADING, ModelStore
from tests.support.data import png_images
from tests.support.pushing import copy_version
from tests.support.warmup_file import write_warmup_file


def _store(base_path, messages):
    return ModelStore("cifar10", str(base_path), num_versions=1, log=messages.append)


def test_warmup_requests_are_replayed_before_the_version_is_available(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    version = copy_version(version_dir, tmp_path, 3)
    write_warmup_file(version, [png_images(1), png_images(4), png_images(8)])
    messages = []
    store = _store(tmp_path, messages)
    store.poll_once()
    assert [(s.version, s.state) for s in store.statuses("cifar10")] == [(3, AVAILABLE)]
    assert any("version 3" in m and "3 warmup requests replayed" in m for m in messages)
    assert store.load_failures() == {}


class _WatchedSlots(threading.BoundedSemaphore):
    """Inference slots that tell when someone waits for one."""

    def __init__(self, value):
        super().__init__(value)
        self.asked = threading.Event()

    def acquire(self, blocking=True, timeout=None):
        self.asked.set()
        return super().acquire(blocking, timeout)

    __enter__ = acquire


def test_warmup_requests_wait_for_an_inference_slot(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    write_warmup_file(copy_version(version_dir, tmp_path, 3), [png_images(1), png_images(2)])
    slots = _WatchedSlots(1)
    slots.acquire()  # a client's request running the model
    slots.asked.clear()
    store = ModelStore("cifar10", str(tmp_path), log=lambda message: None,
                       inference_slots=slots)
    poller = threading.Thread(target=store.poll_once)
    poller.start()
    try:
        assert slots.asked.wait(120), "the warmup replay never asked for a slot"
        time.sleep(1)
        assert poller.is_alive()
        assert [(s.version, s.state) for s in store.statuses_now()] == [(3, LOADING)]
    finally:
        slots.release()
        poller.join(120)
    assert [(s.version, s.state) for s in store.statuses_now()] == [(3, AVAILABLE)]


@pytest.mark.parametrize("damage, message", [
    ("truncate", "cannot be replayed: DataLossError"),
    ("not an image", "was refused by the model under TF Serving's loader: signature "
                     "'serving_default' rejected the input: assertion failed: [image 0: "
                     "Unknown image file format"),
], ids=["corrupt-file", "refused-request"])
def test_a_warmup_that_fails_fails_the_load_and_the_old_version_keeps_serving(
        pushed_model, tmp_path, damage, message):
    _, _, version_dir = pushed_model
    copy_version(version_dir, tmp_path, 3)
    messages = []
    store = _store(tmp_path, messages)
    store.poll_once()
    new = copy_version(version_dir, tmp_path, 4)
    path = write_warmup_file(new, [png_images(2), png_images(2)])
    if damage == "truncate":
        with open(path, "rb") as warmup_file:
            data = warmup_file.read()
        with open(path, "wb") as warmup_file:
            warmup_file.write(data[:len(data) - 20])  # the second record cut short
    else:
        write_warmup_file(new, [png_images(2), [b"not an image"]])
    store.poll_once()
    assert store.get("cifar10").version == 3
    statuses = {s.version: s for s in store.statuses("cifar10")}
    assert statuses[3].state == AVAILABLE and statuses[4].state == END
    assert WARMUP_REQUESTS_FILE in statuses[4].error_message
    assert f"record 2 {message}" in statuses[4].error_message
    assert store.load_failures() == {4: 1}
    store.poll_once()  # not retried until the version's saved_model.pb changes
    assert store.load_failures() == {4: 1}
    assert os.path.exists(path)
