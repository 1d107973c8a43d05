"""The versions of one model under a TF Serving model base path, loaded as they appear.

Follows TF Serving's file-system source and default policy: a version is an integer
directory of `<base path>`; it is ready once its `saved_model.pb` exists (the Pusher
writes that file last); the latest `num_versions` ready versions are served; a new
version is loaded beside the old one and the old one is unloaded only once the new
one is available, so requests never meet a gap. Each version is first loaded the way
TF Serving loads it (`serving.load_check`: restore op, init op, its warmup requests
and one request per signature through `Session.run`); a version that fails there is
refused as a failed load, so this server never serves a model TF Serving cannot run.

With version labels in the base path's model config (serving/labels.py) exactly the
labelled versions are served, and the config is re-read on every poll: a label keeps
its old version until the new one is loaded, then moves, and only then is the old
version unloaded.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Dict, List, Optional, Tuple

from components.contract import SAVED_MODEL_FILE, ready_versions
from serving import labels as version_labels
from serving import load_check, warmup
from serving.errors import ServingError, invalid, not_found
from serving.loaded_version import LoadedVersion, load_version

# tensorflow.serving.ModelVersionStatus.State names, as the status APIs report them.
LOADING, AVAILABLE, END = "LOADING", "AVAILABLE", "END"
# Versions that ended (unloaded, or failed to load) still reported, the newest ones:
# the status API and the metrics keep a bounded history however many pushes there are.
ENDED_VERSIONS_KEPT = 5


@dataclasses.dataclass
class VersionStatus:
    version: int
    state: str
    error_message: str = ""


class ModelStore:
    """Loads and serves the latest versions of `model_name` from `base_path`."""

    def __init__(self, model_name: str, base_path: str, num_versions: int = 1,
                 poll_seconds: float = 1.0, log=print,
                 inference_slots: Optional[threading.Semaphore] = None):
        self.model_name = model_name
        # The server's inference slots (Limits.inference_slots): warmup requests take
        # them as clients' requests do.
        self.inference_slots = inference_slots
        self.base_path = base_path
        self.num_versions = num_versions
        self.poll_seconds = poll_seconds
        self._log = log
        self._lock = threading.Lock()
        self._loaded: Dict[int, LoadedVersion] = {}
        self._statuses: Dict[int, VersionStatus] = {}
        # A version whose load failed is retried only when its saved_model.pb changes
        # (a copy still in progress), not on every poll.
        self._failed: Dict[int, Tuple[float, int]] = {}
        # The model config as last read (None: absent, the newest versions), the file
        # state it was read at, and the labels requests are answered with now.
        self._policy: Optional[version_labels.VersionPolicy] = None
        self._config_state: Optional[tuple] = None
        self._labels: Dict[str, int] = {}
        self._load_failures: Dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _read_config(self) -> None:
        """Re-reads the model config when it changed; a config that cannot be read is
        reported once and the previous one kept (as TF Serving does)."""
        path = version_labels.config_path(self.base_path)
        try:
            stat = os.stat(path)
            state = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            state = None
        if state == self._config_state:
            return
        self._config_state = state
        try:
            policy = version_labels.read_policy(self.base_path, self.model_name)
        except (version_labels.LabelError, OSError) as error:
            self._log(f"Model config {path} not applied, keeping the previous one: {error}")
            return
        if policy != self._policy:
            self._log(f"Model config of {self.model_name}: " + (
                "the newest versions" if policy is None or policy.versions is None else
                f"versions {list(policy.versions)}, labels {policy.labels}"))
        self._policy = policy

    def poll_once(self) -> None:
        """Loads the versions the config asks for (by default the latest), moves the
        labels onto loaded versions, then unloads the rest."""
        ready = ready_versions(self.base_path)
        self._read_config()
        if self._policy is None or self._policy.versions is None:
            wanted = sorted(ready, reverse=True)[:self.num_versions]
        else:
            wanted = [version for version in self._policy.versions if version in ready]
        for version in sorted(wanted):
            if version in self._loaded:
                continue
            pb_stat = os.stat(os.path.join(ready[version], SAVED_MODEL_FILE))
            fingerprint = (pb_stat.st_mtime, pb_stat.st_size)
            if self._failed.get(version) == fingerprint:
                continue
            self._set_status(version, LOADING)
            started = time.monotonic()
            try:
                # TF Serving's own loader first: a version it could not run is refused
                # here too, so what this server serves, TF Serving would.
                load_check.check_version(ready[version], self.inference_slots)
                loaded = load_version(version, ready[version])
                # Before the version is AVAILABLE or takes a request (TF Serving's order).
                warmed_up = warmup.replay(loaded, self.inference_slots)
            except Exception as error:  # a corrupt or half-written version, or warmup file
                self._failed[version] = fingerprint
                self._set_status(version, END, f"{type(error).__name__}: {error}")
                with self._lock:
                    self._load_failures[version] = self._load_failures.get(version, 0) + 1
                self._log(f"Version {version} of {self.model_name} failed to load: {error}")
                continue
            with self._lock:
                self._loaded[version] = loaded
            self._failed.pop(version, None)
            self._set_status(version, AVAILABLE)
            self._log(f"Serving {self.model_name} version {version} from {ready[version]} "
                      f"(loaded in {time.monotonic() - started:.1f} s"
                      + (f", {warmed_up} warmup requests replayed)" if warmed_up else ")"))
        with self._lock:
            self._labels = version_labels.effective_labels(
                self._policy.labels if self._policy else {}, self._labels, set(self._loaded))
            keep = {version for version in wanted if version in self._loaded}
            keep |= set(self._labels.values())
        if not keep:
            return  # keep serving whatever is loaded until a wanted version is ready
        for version in list(self._loaded):
            if version not in keep:
                with self._lock:
                    del self._loaded[version]
                self._set_status(version, END)
                self._log(f"Unloaded {self.model_name} version {version}")

    def _set_status(self, version: int, state: str, error_message: str = "") -> None:
        with self._lock:
            self._statuses[version] = VersionStatus(version, state, error_message)
            ended = sorted(v for v, status in self._statuses.items() if status.state == END)
            for forgotten in ended[:-ENDED_VERSIONS_KEPT]:
                del self._statuses[forgotten]

    def start(self) -> "ModelStore":
        self.poll_once()
        self._thread = threading.Thread(target=self._poll_forever, name="model-poller",
                                        daemon=True)
        self._thread.start()
        return self

    def _poll_forever(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception as error:  # the poller must outlive a bad directory entry
                self._log(f"Polling {self.base_path} failed: {error}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def statuses_now(self) -> List[VersionStatus]:
        """Every version's status, newest first (none yet: empty)."""
        with self._lock:
            return [self._statuses[v] for v in sorted(self._statuses, reverse=True)]

    def load_failures(self) -> Dict[int, int]:
        """Version -> how many of its loads failed."""
        with self._lock:
            return dict(self._load_failures)

    def labels(self) -> Dict[str, int]:
        """Label -> version, as requests by label are answered now."""
        with self._lock:
            return dict(self._labels)

    def _unknown_label(self, label: str) -> ServingError:
        """INVALID_ARGUMENT naming the label (and the version the config gives it, if
        that is not loaded), as TF Serving answers an unknown label."""
        configured = (self._policy.labels if self._policy else {}).get(label)
        detail = (f" (the model config points it at version {configured}, which is not "
                  f"loaded)" if configured is not None else "")
        return invalid(f"Unrecognized servable version label: {label}{detail}")

    def get(self, model_name: str, version: Optional[int] = None,
            label: Optional[str] = None) -> LoadedVersion:
        """The requested version (or the one `label` points at), or the latest
        available one."""
        if model_name != self.model_name:
            raise not_found(f"Servable not found for request: "
                            f"{'Latest' if version is None and label is None else 'Specific'}"
                            f"({model_name}{'' if version is None else f', {version}'}"
                            f"{'' if label is None else f', {label}'})")
        with self._lock:
            # The label is resolved and its version taken under one lock: the poller
            # moves a label and unloads its old version under the same lock.
            if label is not None:
                if label not in self._labels:
                    raise self._unknown_label(label)
                version = self._labels[label]
            if version is None:
                if self._loaded:
                    return self._loaded[max(self._loaded)]
            elif version in self._loaded:
                return self._loaded[version]
        if version is None:
            raise not_found(f"Servable not found for request: Latest({model_name})")
        raise not_found(f"Servable not found for request: Specific({model_name}, {version})")

    def statuses(self, model_name: str, version: Optional[int] = None,
                 label: Optional[str] = None) -> List[VersionStatus]:
        """As TF Serving's GetModelStatus: `label` is ignored (only a version narrows
        the answer), so a status request by label lists every version."""
        if model_name != self.model_name:
            raise not_found(f"Could not find any versions of model {model_name}")
        with self._lock:
            statuses = dict(self._statuses)
        if version is not None:
            if version not in statuses:
                raise not_found(f"Could not find version {version} of model {model_name}")
            return [statuses[version]]
        if not statuses:
            raise not_found(f"Could not find any versions of model {model_name}")
        return [statuses[v] for v in sorted(statuses, reverse=True)]
