"""A sample of the requests a server answers, with their responses, written to disk.

Records are TF Serving's own `PredictionLog` protos (tensorflow-serving-api) in TFRecord
files, the format TFX's BulkInferrer writes, so TFX and TFDV tooling read them back.
Each record's `log_metadata` holds the model name, version and signature that answered,
the sampling rate and the time (`timestamp_secs`); images are the bytes the client
sent. Failed requests are not logged.

Bounded: a file is closed and a new one begun at a quarter of the cap, and the oldest
files are deleted so that the directory's request files stay under `max_bytes`. A
record larger than a file is dropped.

It never blocks or fails a request: a request thread only decides whether the request
is sampled and queues what makes its record; one writer thread builds the record and
writes it; a full queue drops it. Every outcome is counted in the server's Prometheus
metrics (`serving_request_log_records_total{outcome}`).

Each record is framed as TFRecord and handed to the operating system in one `write`
(no buffer of ours, no fsync), and counted `written` only then. A write that fails (a
full disk, a file size limit, a directory that cannot be written) is counted `failed`,
and the file is cut back to its last whole record, so a reader never meets a torn
one; a file left empty is removed, and the next record tries the same file again, so
logging resumes by itself when space returns. The first failure and the recovery are
each printed once.
"""

from __future__ import annotations

import os
import queue
import random
import struct
import threading
import time
from typing import TYPE_CHECKING, Callable, Optional

import google_crc32c
from prometheus_client import CollectorRegistry, Counter

from components.contract import (REQUEST_LOG_FILE_PREFIX, REQUEST_LOG_FILE_SUFFIX,
                                 request_log_files)

if TYPE_CHECKING:
    from tensorflow_serving.apis import prediction_log_pb2

# Records waiting for the writer; past this, a sampled record is dropped, not waited for.
QUEUE_RECORDS = 256
_TFRECORD_CRC_MASK_DELTA = 0xA282EAD8
MIN_CAP_BYTES = 4096
WRITTEN, DROPPED_QUEUE_FULL, DROPPED_TOO_LARGE, FAILED = (
    "written", "dropped_queue_full", "dropped_too_large", "failed")


def record_of(request, response) -> prediction_log_pb2.PredictionLog:
    """The PredictionLog of a request and the response that answered it: a PredictLog
    for a PredictRequest, a ClassifyLog for a ClassificationRequest."""
    # Imported here: tensorflow-serving-api imports TensorFlow, which a server imports
    # only once its start-up lines can be dropped (serving/quiet_import.py).
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    log = (record.predict_log if request.DESCRIPTOR.name == "PredictRequest"
           else record.classify_log)
    log.request.CopyFrom(request)
    log.response.CopyFrom(response)
    record.log_metadata.model_spec.CopyFrom(response.model_spec)
    return record


def _masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC32-C of `data`, little-endian."""
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + _TFRECORD_CRC_MASK_DELTA)
                       & 0xFFFFFFFF)


def tfrecord(serialized: bytes) -> bytes:
    """One TFRecord: the length, its CRC, the data, the data's CRC (what
    tf.io.TFRecordWriter writes; here so that a record reaches the file in one write
    whose outcome is known)."""
    length = struct.pack("<Q", len(serialized))
    return length + _masked_crc(length) + serialized + _masked_crc(serialized)


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
        self._queue: queue.Queue = queue.Queue(QUEUE_RECORDS)  # (build, time) or None
        self._fd: Optional[int] = None
        self._path = ""
        self._file_size = 0
        self._sequence = 0
        self._failed_since_ok = 0  # writes failed since the last one that succeeded
        self._build_failure_reported = False
        self._thread = threading.Thread(target=self._write_forever, name="request-log",
                                        daemon=True)
        self._thread.start()

    def describe(self) -> str:
        return (f"{self.sampling_rate:.0%} of the answered requests with their responses "
                f"to {self.directory} (at most {self.max_bytes / 2**20:g} MiB)")

    def offer(self, build: Callable[[], prediction_log_pb2.PredictionLog]) -> None:
        """Logs the record `build` makes if this request is sampled. Never raises and
        never waits: `build` runs later, on the writer thread, and only for a sampled
        request; the record's time is now."""
        with self._random_lock:
            if self._random.random() >= self.sampling_rate:
                return
        try:
            self._queue.put_nowait((build, time.time()))
        except queue.Full:
            self.records.labels(DROPPED_QUEUE_FULL).inc()

    def _failed(self, why: str, writing: bool = True) -> None:
        """Counts a record that was not written; prints the first failure of each kind
        (a record that cannot be made: once; writing: once until a write succeeds)."""
        self.records.labels(FAILED).inc()
        first = not self._failed_since_ok if writing else not self._build_failure_reported
        if writing:
            self._failed_since_ok += 1
        else:
            self._build_failure_reported = True
        if first:
            self._log(f"Request log: {why}; requests are still served, and the records "
                      f"that cannot be written are counted in "
                      f"serving_request_log_records_total{{outcome=\"{FAILED}\"}}")

    def _written(self) -> None:
        self.records.labels(WRITTEN).inc()
        if self._failed_since_ok:
            self._log(f"Request log: writing to {self.directory} again "
                      f"({self._failed_since_ok} records could not be written)")
            self._failed_since_ok = 0

    def _write_forever(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            build, logged_at = item
            try:
                record = build()
                record.log_metadata.sampling_config.sampling_rate = self.sampling_rate
                record.log_metadata.timestamp_secs = int(logged_at)
                framed = tfrecord(record.SerializeToString())
            except Exception as error:  # noqa: BLE001 (a record that cannot be made)
                self._failed(f"a record could not be made: {type(error).__name__}: "
                             f"{error}", writing=False)
                continue
            if len(framed) > self.file_bytes:
                self.records.labels(DROPPED_TOO_LARGE).inc()
                continue
            try:
                self._write(framed)
            except OSError as error:  # a full disk, a file size limit, no directory
                self._failed(f"cannot write to {self.directory}: "
                             f"{error.strerror or type(error).__name__}")
            else:
                self._written()
        self._close_file()

    def _write(self, framed: bytes) -> None:
        if self._fd is not None and self._file_size + len(framed) > self.file_bytes:
            self._close_file()
        if self._fd is None:
            self._open_file()
        done = 0
        try:
            while done < len(framed):  # a write cut short by a full disk says so next
                done += os.write(self._fd, memoryview(framed)[done:])
        except OSError:
            self._cut_back()
            raise
        self._file_size += len(framed)

    def _cut_back(self) -> None:
        """After a failed write: the file without the torn record (or gone when it
        holds none), so that a reader reads it to its end."""
        try:
            os.ftruncate(self._fd, self._file_size)
        except OSError:  # cannot repair: a reader stops at the torn tail of this file
            self._close_file()
            return
        if self._file_size == 0:
            path = self._path
            self._close_file()
            try:
                os.remove(path)
            except OSError:
                pass

    def _open_file(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        self._make_room()
        self._sequence += 1
        utc_time = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = (f"{REQUEST_LOG_FILE_PREFIX}{utc_time}-{os.getpid()}-{self._sequence:06d}"
                f"{REQUEST_LOG_FILE_SUFFIX}")
        self._path = os.path.join(self.directory, name)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                           | os.O_CLOEXEC, 0o644)
        self._file_size = 0

    def _make_room(self) -> None:
        """Deletes the oldest request files until a new full one fits under the cap."""
        sizes = {}
        for name in request_log_files(self.directory):
            try:
                sizes[name] = os.path.getsize(os.path.join(self.directory, name))
            except OSError:  # deleted meanwhile
                pass
        total = sum(sizes.values())
        for name in sizes:
            if total + self.file_bytes <= self.max_bytes:
                break
            try:
                os.remove(os.path.join(self.directory, name))
            except FileNotFoundError:
                pass
            total -= sizes[name]

    def _close_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def close(self, timeout_s: float = 10.0) -> None:
        """Writes what is queued and closes the file."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)
