"""A sample of the requests a server answers, with their responses, written to disk.

Records are TF Serving's own `PredictionLog` protos (tensorflow-serving-api) in TFRecord
files, the format TFX's BulkInferrer writes, so TFX and TFDV tooling read them back.
Each record's `log_metadata` holds the model name, version and signature that answered,
the sampling rate and the time (`timestamp_secs`); images are the bytes the client
sent. Failed requests are not logged.

Bounded: a file is closed and a new one begun at a quarter of the cap, and the oldest
files are deleted so that the directory's request files stay under `max_bytes`. A
record larger than a file is dropped.

It never blocks or fails a request: a sampled record goes through a bounded queue to
one writer thread; a full queue drops it; a write that fails (a full disk, a directory
that cannot be written) drops it. Every outcome is counted in the server's Prometheus
metrics (`serving_request_log_records_total{outcome}`), and the first failure is
printed once; serving goes on, and the writer tries a new file for the next record.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from typing import Callable, Optional

from prometheus_client import CollectorRegistry, Counter
from tensorflow_serving.apis import prediction_log_pb2

from components.contract import (REQUEST_LOG_FILE_PREFIX, REQUEST_LOG_FILE_SUFFIX,
                                 request_log_files)

# Records waiting for the writer; past this, a sampled record is dropped, not waited for.
QUEUE_RECORDS = 256
# TFRecord framing around each record: length, its CRC, the data's CRC.
_RECORD_FRAMING_BYTES = 16
MIN_CAP_BYTES = 4096
WRITTEN, DROPPED_QUEUE_FULL, DROPPED_TOO_LARGE, FAILED = (
    "written", "dropped_queue_full", "dropped_too_large", "failed")


def record_of(request, response) -> prediction_log_pb2.PredictionLog:
    """The PredictionLog of a request and the response that answered it: a PredictLog
    for a PredictRequest, a ClassifyLog for a ClassificationRequest."""
    record = prediction_log_pb2.PredictionLog()
    log = (record.predict_log if request.DESCRIPTOR.name == "PredictRequest"
           else record.classify_log)
    log.request.CopyFrom(request)
    log.response.CopyFrom(response)
    record.log_metadata.model_spec.CopyFrom(response.model_spec)
    return record


def flags_problem(sampling_rate: float, max_mb: float) -> Optional[str]:
    """What is wrong with `--log-sampling-rate` and `--log-max-mb`, or None."""
    if not 0 < sampling_rate <= 1:
        return f"--log-sampling-rate {sampling_rate:g}: must be in (0, 1]"
    if max_mb * 2**20 < MIN_CAP_BYTES:
        return f"--log-max-mb {max_mb:g}: must be at least {MIN_CAP_BYTES / 2**20:g} (4 KiB)"
    return None


class RequestLog:

    def __init__(self, directory: str, sampling_rate: float, max_bytes: int,
                 registry: Optional[CollectorRegistry] = None,
                 log: Callable[[str], None] = print, seed: Optional[int] = None) -> None:
        if not 0 < sampling_rate <= 1:
            raise ValueError(f"the sampling rate {sampling_rate} is not in (0, 1]")
        if max_bytes < MIN_CAP_BYTES:
            raise ValueError(f"the cap {max_bytes} bytes is below 4 KiB")
        self.directory = os.path.abspath(directory)
        self.sampling_rate, self.max_bytes = sampling_rate, max_bytes
        self.file_bytes = max_bytes // 4
        self.records = Counter("serving_request_log_records",
                               "Sampled requests by what became of their record",
                               ["outcome"], registry=registry)
        for outcome in (WRITTEN, DROPPED_QUEUE_FULL, DROPPED_TOO_LARGE, FAILED):
            self.records.labels(outcome)
        self._log = log
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self._queue: "queue.Queue[Optional[bytes]]" = queue.Queue(QUEUE_RECORDS)
        self._writer = None
        self._file_size = 0
        self._sequence = 0
        self._failure_reported = False
        self._thread = threading.Thread(target=self._write_forever, name="request-log",
                                        daemon=True)
        self._thread.start()

    def describe(self) -> str:
        return (f"{self.sampling_rate:.0%} of the answered requests with their responses "
                f"to {self.directory} (at most {self.max_bytes / 2**20:g} MiB)")

    def offer(self, build: Callable[[], prediction_log_pb2.PredictionLog]) -> None:
        """Logs the record `build` makes if this request is sampled. Never raises and
        never waits: `build` runs only for a sampled request."""
        with self._random_lock:
            if self._random.random() >= self.sampling_rate:
                return
        try:
            record = build()
            record.log_metadata.sampling_config.sampling_rate = self.sampling_rate
            record.log_metadata.timestamp_secs = int(time.time())
            serialized = record.SerializeToString()
        except Exception as error:  # a record that cannot be made must not fail a request
            self._failed(f"a record could not be made: {type(error).__name__}: {error}")
            return
        if len(serialized) + _RECORD_FRAMING_BYTES > self.file_bytes:
            self.records.labels(DROPPED_TOO_LARGE).inc()
            return
        try:
            self._queue.put_nowait(serialized)
        except queue.Full:
            self.records.labels(DROPPED_QUEUE_FULL).inc()

    def _failed(self, why: str) -> None:
        self.records.labels(FAILED).inc()
        if not self._failure_reported:
            self._failure_reported = True
            self._log(f"Request log: {why}; requests are still served, and the records "
                      f"that cannot be written are counted in "
                      f"serving_request_log_records_total{{outcome=\"{FAILED}\"}}")

    def _write_forever(self) -> None:
        while True:
            serialized = self._queue.get()
            if serialized is None:
                break
            try:
                self._write(serialized)
                if self._queue.empty():  # on disk before the writer waits again
                    self._writer.flush()
            except Exception as error:  # a full disk, an unwritable directory
                self._close_file()
                self._failed(f"cannot write to {self.directory}: {type(error).__name__}: "
                             f"{error}")
        self._close_file()

    def _write(self, serialized: bytes) -> None:
        size = len(serialized) + _RECORD_FRAMING_BYTES
        if self._writer is not None and self._file_size + size > self.file_bytes:
            self._close_file()
        if self._writer is None:
            self._open_file()
        self._writer.write(serialized)
        self._file_size += size
        self.records.labels(WRITTEN).inc()

    def _open_file(self) -> None:
        import tensorflow as tf

        os.makedirs(self.directory, exist_ok=True)
        self._make_room()
        self._sequence += 1
        utc_time = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = (f"{REQUEST_LOG_FILE_PREFIX}{utc_time}-{os.getpid()}-{self._sequence:06d}"
                f"{REQUEST_LOG_FILE_SUFFIX}")
        self._writer = tf.io.TFRecordWriter(os.path.join(self.directory, name))
        self._file_size = 0

    def _make_room(self) -> None:
        """Deletes the oldest request files until a new full one fits under the cap."""
        sizes = {name: os.path.getsize(os.path.join(self.directory, name))
                 for name in request_log_files(self.directory)}
        total = sum(sizes.values())
        for name in sizes:
            if total + self.file_bytes <= self.max_bytes:
                break
            os.remove(os.path.join(self.directory, name))
            total -= sizes[name]

    def _close_file(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception as error:  # the last records did not reach the disk
                self._failed(f"cannot write to {self.directory}: {type(error).__name__}: "
                             f"{error}")

    def close(self, timeout_s: float = 10.0) -> None:
        """Writes what is queued and closes the file."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)
