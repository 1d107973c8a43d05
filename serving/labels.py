"""Version labels over a model base path: the model config both backends read.

`<base path>/models.config` (components.contract.MODEL_CONFIG_FILE) is TF Serving's
ModelServerConfig in text format, written with tensorflow-serving-api's protos:
- absent (or a `latest` policy): the newest `--num-versions` versions are served;
- with labels: a `specific` policy naming the labelled versions, and `version_labels`.
  A push is then not served until a label is moved onto it.

TF Serving moves a label that is in use only onto a version that is already loaded
(a config that does otherwise is refused). So, given the server (`--server`), moving
a label onto a version the server does not have is two writes: the version added to
the policy, a wait until the server reports it AVAILABLE, then the label moved. The
embedded server does not need this (a label keeps its old version until the new one
is loaded) but is served the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from typing import Callable, Dict, List, Optional

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.contract import (CANARY_LABEL, MODEL_CONFIG_FILE, STABLE_HISTORY_FILE,
                                 STABLE_LABEL, ready_versions)


class LabelError(ValueError):
    """A label command that cannot be carried out; nothing was changed."""


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """What the model config asks to be served: `versions` None means the newest
    `num_versions` (TF Serving's `latest` policy); else exactly those versions."""
    labels: Dict[str, int]
    versions: Optional[tuple] = None
    num_versions: int = 1


def config_path(base_path: str) -> str:
    return os.path.join(base_path, MODEL_CONFIG_FILE)


def config_text(model_name: str, base_path: str, policy: VersionPolicy,
                num_versions: int = 1) -> str:
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    if policy.versions is None:
        model.model_version_policy.latest.num_versions = num_versions
    else:
        model.model_version_policy.specific.versions.extend(sorted(policy.versions))
    for label, version in sorted(policy.labels.items()):
        model.version_labels[label] = version
    return text_format.MessageToString(config)


def parse_config(text: str, model_name: str, source: str) -> VersionPolicy:
    """The policy of `model_name` in a ModelServerConfig text; LabelError naming
    `source` when it cannot be read or does not hold that model."""
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as error:
        raise LabelError(f"{source}: not a ModelServerConfig in text format: {error}") from None
    models = [model for model in config.model_config_list.config if model.name == model_name]
    if len(models) != 1:
        raise LabelError(f"{source}: holds {len(models)} configs of model {model_name!r} "
                         f"(models: {[m.name for m in config.model_config_list.config]})")
    (model,) = models
    labels = dict(model.version_labels)
    if model.model_version_policy.WhichOneof("policy_choice") == "specific":
        versions = tuple(sorted(model.model_version_policy.specific.versions))
        unserved = sorted(label for label, version in labels.items() if version not in versions)
        if unserved:
            raise LabelError(f"{source}: labels {unserved} name versions the specific "
                             f"policy does not serve")
        return VersionPolicy(labels, versions)
    if labels:
        raise LabelError(f"{source}: version labels need a specific version policy")
    # An empty latest policy is TF Serving's default: one version.
    return VersionPolicy({}, None, model.model_version_policy.latest.num_versions or 1)


def read_policy(base_path: str, model_name: str) -> Optional[VersionPolicy]:
    """The config's policy, or None when there is no config (the newest versions)."""
    path = config_path(base_path)
    try:
        with open(path) as config_file:
            text = config_file.read()
    except FileNotFoundError:
        return None
    return parse_config(text, model_name, path)


def _write_atomically(path: str, text: str) -> None:
    """Readers see the old file or the new one, never a part (a rename in one directory)."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path),
                                         prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(handle, "w") as temporary_file:
            temporary_file.write(text)
            temporary_file.flush()
            os.fsync(temporary_file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_policy(base_path: str, model_name: str, policy: VersionPolicy,
                 num_versions: int = 1) -> None:
    _write_atomically(config_path(base_path),
                      config_text(model_name, os.path.abspath(base_path), policy,
                                  num_versions))


def stable_history(base_path: str) -> List[int]:
    try:
        with open(os.path.join(base_path, STABLE_HISTORY_FILE)) as history_file:
            return [int(line) for line in history_file if line.strip()]
    except FileNotFoundError:
        return []
    except ValueError as error:
        raise LabelError(f"{os.path.join(base_path, STABLE_HISTORY_FILE)}: a line is not a "
                         f"version number: {error}") from None


def _write_history(base_path: str, history: List[int]) -> None:
    _write_atomically(os.path.join(base_path, STABLE_HISTORY_FILE),
                      "".join(f"{version}\n" for version in history))


def server_version_states(server: str, model_name: str, timeout: float = 10.0) -> Dict[int, tuple]:
    """Version -> (state, error message), as the server's REST status API reports them;
    {} when the model has no version yet."""
    url = f"{server.rstrip('/')}/v1/models/{model_name}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
        return {int(entry["version"]): (entry["state"],
                                        entry.get("status", {}).get("error_message", ""))
                for entry in body.get("model_version_status", [])}
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return {}
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise LabelError(f"{url}: not a model status answer ({type(error).__name__}: "
                         f"{error})") from None


def server_label_version(server: str, model_name: str, label: str,
                         timeout: float = 10.0) -> Optional[int]:
    """The version the server answers `label` with now; None when it does not know it.

    Read from the label's metadata: TF Serving resolves a label there, while its status
    API (`/labels/L` without `/metadata`) ignores the label and lists every version."""
    url = f"{server.rstrip('/')}/v1/models/{model_name}/labels/{label}/metadata"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(json.loads(response.read())["model_spec"]["version"])
    except urllib.error.HTTPError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise LabelError(f"{url}: not a model metadata answer ({type(error).__name__}: "
                         f"{error})") from None


def _wait_until_available(server: str, model_name: str, version: int,
                          timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state, error = "not reported", ""
    while time.monotonic() < deadline:
        try:
            state, error = server_version_states(server, model_name).get(
                version, ("not reported", ""))
        except OSError as failure:  # the server restarting: keep asking until the deadline
            state, error = "unreachable", str(failure)
        if state == "AVAILABLE":
            return
        if state == "END" and error:
            raise LabelError(f"version {version} failed to load on {server}: {error}")
        time.sleep(0.2)
    raise LabelError(f"version {version} was not AVAILABLE on {server} within "
                     f"{timeout_s:.0f} s (last state: {state}{': ' + error if error else ''})")


def _wait_until_labelled(server: str, model_name: str, label: str, version: int,
                         timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    answered = None
    while time.monotonic() < deadline:
        try:
            answered = server_label_version(server, model_name, label)
        except OSError:
            answered = None
        if answered == version:
            return
        time.sleep(0.2)
    raise LabelError(f"the config points {label!r} at version {version}, but {server} still "
                     f"answers it with {answered} after {timeout_s:.0f} s")


def move_label(base_path: str, model_name: str, label: str, version: int,
               server: Optional[str] = None, timeout_s: float = 300.0,
               log: Callable = print) -> VersionPolicy:
    """Points `label` at `version`; returns the new policy. With `server`, a version the
    server does not have is loaded before the label moves (see the module's note), and
    the call returns once the server answers by the label with the version; if either
    does not happen in `timeout_s` the config is put back and LabelError raised."""
    ready = ready_versions(base_path)
    if version not in ready:
        raise LabelError(f"version {version} of {model_name} is not under {base_path} "
                         f"(versions there: {', '.join(map(str, sorted(ready))) or 'none'})")
    current = read_policy(base_path, model_name) or VersionPolicy({}, None)
    if label == CANARY_LABEL and STABLE_LABEL not in current.labels:
        raise LabelError(f"set {STABLE_LABEL!r} before {CANARY_LABEL!r}: once a label is "
                         f"set only labelled versions are served")
    labels = {**current.labels, label: version}
    wanted = VersionPolicy(labels, tuple(sorted(set(labels.values()))))
    # Put back if the server does not follow (None: there was no config). The stable
    # history is written only once the move is done (with `server`, confirmed there),
    # so that a rollback never goes back to a version that was never served as stable.
    previous_text = _read_text(config_path(base_path))
    history = stable_history(base_path)
    try:
        if (server and label in current.labels and current.labels[label] != version
                and server_version_states(server, model_name).get(version, ("",))[0]
                != "AVAILABLE"):
            loading = VersionPolicy(current.labels,
                                    tuple(sorted(set(current.labels.values()) | {version})))
            write_policy(base_path, model_name, loading)
            log(f"Loading version {version} on {server} before moving {label!r} onto it")
            _wait_until_available(server, model_name, version, timeout_s)
        write_policy(base_path, model_name, wanted)
        if server:  # returns once the server answers by the label with the version
            _wait_until_labelled(server, model_name, label, version, timeout_s)
    except BaseException:
        if previous_text is None:
            if os.path.exists(config_path(base_path)):
                os.remove(config_path(base_path))
        else:
            _write_atomically(config_path(base_path), previous_text)
        raise
    if label == STABLE_LABEL and (not history or history[-1] != version):
        _write_history(base_path, history + [version])
    return wanted


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path) as text_file:
            return text_file.read()
    except FileNotFoundError:
        return None


def rollback(base_path: str, model_name: str, server: Optional[str] = None,
             timeout_s: float = 300.0, log: Callable = print) -> int:
    """Points `stable` back at the version that was stable before it; returns it."""
    current = read_policy(base_path, model_name)
    if current is None or STABLE_LABEL not in current.labels:
        raise LabelError(f"no {STABLE_LABEL!r} label in {config_path(base_path)}: nothing to "
                         f"roll back")
    history = stable_history(base_path)
    while history and history[-1] == current.labels[STABLE_LABEL]:
        history.pop()
    if not history:
        raise LabelError(f"version {current.labels[STABLE_LABEL]} is the first "
                         f"{STABLE_LABEL!r} version recorded in "
                         f"{os.path.join(base_path, STABLE_HISTORY_FILE)}: nothing earlier "
                         f"to roll back to")
    target = history[-1]
    move_label(base_path, model_name, STABLE_LABEL, target, server, timeout_s, log)
    # The version rolled back from leaves the history: a second rollback goes further.
    _write_history(base_path, history)
    return target


def effective_labels(wanted: Dict[str, int], current: Dict[str, int],
                     loaded: set) -> Dict[str, int]:
    """The labels a server answers while it follows `wanted`: a label points at its
    wanted version once that is loaded; until then it keeps its current version (if
    still loaded), so that requests by label never meet a version that is loading."""
    labels = {}
    for label, version in wanted.items():
        if version in loaded:
            labels[label] = version
        elif current.get(label) in loaded:
            labels[label] = current[label]
    return labels
