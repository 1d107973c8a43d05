"""Command line:

    python -m serving serve --model-base-path DIR --model-name NAME --rest-port P --grpc-port Q
    python -m serving predict --server URL [--grpc] IMAGE...
    python -m serving predict --tflite MODEL.tflite IMAGE...
    python -m serving label stable|canary VERSION --model-base-path DIR [--server URL]
    python -m serving rollback --model-base-path DIR [--server URL]
    python -m serving versions --model-base-path DIR [--server URL]
    python -m serving check --model-base-path DIR | --model-dir SAVED_MODEL [--json]
    python -m serving reexport --model-base-path DIR --version V
    python -m serving proxy --backend URL --port P --log-requests DIR

Exit status: 0 on success, 2 for bad arguments or input (named in the message), 1 when
the server refused a request or could not be reached, or (check) when a version fails
under TF Serving's loader.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

# Only errors from TensorFlow's C++ start-up, not its informational lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from components.contract import STABLE_LABEL, VERSION_LABELS  # noqa: E402
from serving.limits import Limits  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a model base path over REST and gRPC")
    serve.add_argument("--model-base-path", required=True,
                       help="directory of integer version directories (the Pusher's target)")
    serve.add_argument("--model-name", default="cifar10")
    serve.add_argument("--rest-port", type=int, default=8501, help="0: any free port")
    serve.add_argument("--grpc-port", type=int, default=8500, help="0: any free port")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--backend", default="auto",
                       choices=["auto", "tensorflow_model_server", "docker", "embedded"],
                       help="auto: TF Serving on PATH, else its Docker image, else embedded")
    serve.add_argument("--num-versions", type=int, default=1,
                       help="latest versions served at once")
    serve.add_argument("--poll-seconds", type=float, default=1.0,
                       help="how often the base path is checked for new versions")
    serve.add_argument("--max-request-mb", type=float, default=8.0,
                       help="larger requests are refused (REST 413, gRPC RESOURCE_EXHAUSTED)")
    serve.add_argument("--max-batch-size", type=int, default=Limits.max_batch_size,
                       help="instances per request, beyond which it is refused; TF "
                            "Serving's batching max_batch_size too (at least the warmup "
                            "file's largest batch, 32)")
    serve.add_argument("--max-concurrent-inferences", type=int,
                       default=Limits.max_concurrent_inferences,
                       help="requests running the model at once; others wait (embedded)")
    serve.add_argument("--read-timeout-seconds", type=float, default=Limits.read_timeout_s,
                       help="a REST client silent this long, or not done sending its body "
                            "by then, gets 408 (embedded)")
    serve.add_argument("--max-connections", type=int, default=Limits.max_connections,
                       help="REST connections at once; the next one gets 503 (embedded)")
    _request_log_flags(serve, required=False)
    serve.add_argument("--config-dir", help="where TF Serving's config files are written")
    serve.add_argument("--dry-run", action="store_true",
                       help="print the backend, config files and command; start nothing")
    proxy = commands.add_parser(
        "proxy", help="pass TF Serving's REST API through to a backend, logging a sample "
        "of the answered requests (TF Serving cannot log them)")
    proxy.add_argument("--backend", required=True,
                       help="the backend's REST URL, e.g. http://127.0.0.1:8501")
    proxy.add_argument("--port", type=int, default=8511, help="0: any free port")
    proxy.add_argument("--host", default="0.0.0.0")
    proxy.add_argument("--model-name", default="cifar10",
                       help="the model the metrics count requests of")
    proxy.add_argument("--max-request-mb", type=float, default=8.0)
    proxy.add_argument("--read-timeout-seconds", type=float, default=Limits.read_timeout_s)
    proxy.add_argument("--max-connections", type=int, default=Limits.max_connections)
    proxy.add_argument("--backend-timeout-seconds", type=float, default=60.0,
                       help="the deadline for the backend's whole answer (then 504)")
    proxy.add_argument("--max-answer-mb", type=float, default=8.0,
                       help="the largest backend answer passed on (then 502)")
    proxy.add_argument("--metadata-refresh-seconds", type=float, default=10.0,
                       help="how often the backend's metadata (version, dtypes) is asked "
                       "for the request log's records, off the request path")
    _request_log_flags(proxy, required=True)
    predict = commands.add_parser("predict", help="classify image files with a served model")
    target = predict.add_mutually_exclusive_group(required=True)
    target.add_argument("--tflite", metavar="PATH",
                        help="run a pushed TFLite model (model_int8.tflite, "
                        "model_float16.tflite) in TFLite's interpreter instead of a server")
    target.add_argument("--server",
                         help="REST: http://host:port; gRPC (with --grpc): host:port")
    predict.add_argument("--grpc", action="store_true")
    predict.add_argument("--model-name", default="cifar10")
    predict.add_argument("--version", type=int, help="a specific version (default: latest)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    label = commands.add_parser("label", help="point a version label at a version")
    label.add_argument("label", choices=VERSION_LABELS)
    label.add_argument("version", type=int)
    rollback = commands.add_parser(
        "rollback", help=f"point {STABLE_LABEL!r} back at the version stable before it")
    versions = commands.add_parser("versions", help="list versions, their state and labels")
    for command in (label, rollback, versions):
        command.add_argument("--model-base-path", required=True,
                             help="directory of integer version directories")
        command.add_argument("--model-name", default="cifar10")
        command.add_argument("--server", help="the model server's REST URL: versions reports "
                             "its states; label and rollback load a version there before "
                             "moving a label in use onto it (TF Serving needs this)")
    check = commands.add_parser(
        "check", help="load versions the way TF Serving does and name those it cannot run")
    where = check.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-base-path", help="check every version under it")
    where.add_argument("--model-dir", help="check one SavedModel directory")
    check.add_argument("--model-name", default="cifar10")
    check.add_argument("--json", action="store_true", help="one JSON object per line")
    reexport = commands.add_parser(
        "reexport", help="write a version again, as the next version, so TF Serving runs it")
    reexport.add_argument("--model-base-path", required=True)
    reexport.add_argument("--model-name", default="cifar10")
    reexport.add_argument("--version", type=int, required=True)
    for command in (label, rollback):
        command.add_argument("--timeout-seconds", type=float, default=300.0,
                             help="how long a version may take to load on --server")
    return parser


def _request_log_flags(command, required: bool) -> None:
    command.add_argument("--log-requests", metavar="DIR", required=required,
                         help="log a sample of the answered predict and classify requests, "
                              "with their responses, as PredictionLog TFRecords (the "
                              "embedded server, or the proxy in front of TF Serving)")
    command.add_argument("--log-sampling-rate", type=float, default=0.1,
                         help="share of requests logged, in (0, 1] (default 0.1)")
    command.add_argument("--log-max-mb", type=float, default=1024.0,
                         help="cap on the request log's files; the oldest go first")


def _proxy(args) -> int:
    from serving import quiet_import
    quiet_import.tensorflow()
    from serving.model_server import wait_for_stop_signal
    from serving.proxy import LoggingProxy, backend_problem
    from serving.request_log import flags_problem
    from serving.http_transport import serve_http

    limits = Limits(max_request_bytes=int(args.max_request_mb * 1024 * 1024),
                    read_timeout_s=args.read_timeout_seconds,
                    max_connections=args.max_connections)
    try:
        limits.check()
    except ValueError as error:
        print(f"error: limits: {error}", file=sys.stderr)
        return 2
    positive = {"--backend-timeout-seconds": args.backend_timeout_seconds,
                "--max-answer-mb": args.max_answer_mb,
                "--metadata-refresh-seconds": args.metadata_refresh_seconds}
    problem = (flags_problem(args.log_sampling_rate, args.log_max_mb)
               or backend_problem(args.backend)
               or next((f"{flag} {value:g}: must be > 0" for flag, value in positive.items()
                        if not value > 0), None))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    proxy = LoggingProxy(args.backend, args.model_name, args.log_requests,
                         args.log_sampling_rate, int(args.log_max_mb * 2**20), limits,
                         timeout_s=args.backend_timeout_seconds,
                         max_answer_bytes=int(args.max_answer_mb * 2**20),
                         metadata_refresh_s=args.metadata_refresh_seconds)
    server = serve_http(proxy, args.host, args.port, limits)
    print(f"Proxy at http://{args.host}:{server.server_port} for {proxy.backend_url}, "
          f"logging {proxy.requests_log.describe()}", flush=True)
    wait_for_stop_signal()
    server.shutdown()
    proxy.requests_log.close()
    return 0


def _serve(args) -> int:
    from serving import model_server

    settings = model_server.ServerSettings(
        model_base_path=args.model_base_path, model_name=args.model_name,
        rest_port=args.rest_port, grpc_port=args.grpc_port, host=args.host,
        num_versions=args.num_versions, file_system_poll_seconds=args.poll_seconds,
        max_batch_size=args.max_batch_size, log_requests_dir=args.log_requests,
        log_sampling_rate=args.log_sampling_rate, log_max_mb=args.log_max_mb,
        limits=Limits(max_request_bytes=int(args.max_request_mb * 1024 * 1024),
                      max_batch_size=args.max_batch_size,
                      max_concurrent_inferences=args.max_concurrent_inferences,
                      read_timeout_s=args.read_timeout_seconds,
                      max_connections=args.max_connections))
    try:
        return model_server.serve(settings, args.backend, args.config_dir, args.dry_run)
    except model_server.ServerConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _predict(args) -> int:
    from serving.client import ServingRequestError, connect

    images = []
    for path in args.images:
        try:
            with open(path, "rb") as image_file:
                images.append(image_file.read())
        except OSError as error:
            print(f"error: {path}: {error.strerror}", file=sys.stderr)
            return 2
    if args.tflite:
        from serving import quiet_import, tflite_model
        if not os.path.isfile(args.tflite):
            print(f"error: --tflite {args.tflite}: no such file", file=sys.stderr)
            return 2
        quiet_import.tensorflow()
        try:
            pixels = [tflite_model.decode(path, encoded)
                      for path, encoded in zip(args.images, images)]
            predictions = tflite_model.predict(args.tflite, pixels)
        except tflite_model.TFLiteInputError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        _print_predictions(args.images, predictions)
        return 0
    client = connect(args.server, args.model_name, grpc=args.grpc, version=args.version)
    try:
        predictions = client.predict(images)
    except ServingRequestError as error:
        print(f"error: the server refused the request: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # connection refused, timeouts
        print(f"error: cannot reach {args.server}: {error}", file=sys.stderr)
        return 1
    _print_predictions(args.images, predictions)
    return 0


def _print_predictions(paths: list, predictions: list) -> None:
    width = max(len(path) for path in paths)
    print(f"{'image':<{width}}  class  {'name':<10}  probability")
    for path, prediction in zip(paths, predictions):
        print(f"{path:<{width}}  {prediction.class_id:>5}  {prediction.class_name:<10}  "
              f"{prediction.probability:.4f}")


def _labels(args) -> int:
    """label / rollback / versions over a model base path."""
    from serving import labels

    if not os.path.isdir(args.model_base_path):
        print(f"error: --model-base-path {args.model_base_path}: not a directory",
              file=sys.stderr)
        return 2
    try:
        if args.command == "versions":
            _print_versions(args)
        elif args.command == "label":
            labels.move_label(args.model_base_path, args.model_name, args.label, args.version,
                              args.server, args.timeout_seconds)
            print(f"{args.label} -> version {args.version} of {args.model_name}")
        else:
            version = labels.rollback(args.model_base_path, args.model_name, args.server,
                                      args.timeout_seconds)
            print(f"{STABLE_LABEL} -> version {version} of {args.model_name} (rolled back)")
    except labels.LabelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # --server unreachable
        print(f"error: cannot reach {args.server}: {error}", file=sys.stderr)
        return 1
    return 0


def _check(args) -> int:
    """Every version (or one directory) through TF Serving's loader; exit 1 when any
    fails, each failure printed with its fix."""
    import json

    from components.contract import ready_versions
    from serving import quiet_import
    from serving.load_check import LoadCheckError, check_version

    tf = quiet_import.tensorflow()
    if args.model_dir:

        if not tf.io.gfile.isdir(args.model_dir):  # a remote model too (gs://)
            print(f"error: --model-dir {args.model_dir}: not a directory", file=sys.stderr)
            return 2
        targets = {None: args.model_dir}
    else:
        if not os.path.isdir(args.model_base_path):
            print(f"error: --model-base-path {args.model_base_path}: not a directory",
                  file=sys.stderr)
            return 2
        targets = dict(sorted(ready_versions(args.model_base_path).items()))
        if not targets:
            print(f"error: --model-base-path {args.model_base_path}: no complete version "
                  f"(an integer directory holding saved_model.pb)", file=sys.stderr)
            return 2
        if not args.json:
            print(f"Loading {len(targets)} version(s) of {args.model_name} the way TF "
                  f"Serving does (restore op, init op, Session.run)")
    failed = 0
    for version, path in targets.items():
        name = path if version is None else f"version {version}"
        try:
            result = check_version(path)
        except LoadCheckError as error:
            failed += 1
            fix = (f"python -m serving reexport --model-base-path {args.model_base_path} "
                   f"--version {version}" if version is not None else
                   "copy it under a model base path as a version and run `python -m "
                   "serving reexport` on it")
            if args.json:
                print(json.dumps({"version": version, "path": path, "ok": False,
                                  "error": str(error), "fix": fix}))
            else:
                print(f"{name}: TF Serving cannot run it: {error}\n  fix: {fix}")
            continue
        if args.json:
            print(json.dumps({"version": version, "path": path, "ok": True,
                              "seconds": round(result.seconds, 2),
                              "variables": result.variables,
                              "warmup_requests": result.warmup_requests,
                              "signatures": result.signatures_queried}))
        else:
            print(f"{name}: OK, loaded and queried as TF Serving does in "
                  f"{result.seconds:.1f} s ({result.variables} variables restored, "
                  f"{result.warmup_requests} warmup requests, signatures "
                  f"{', '.join(result.signatures_queried)})")
    return 1 if failed else 0


def _reexport(args) -> int:
    from serving import quiet_import
    quiet_import.tensorflow()
    from serving.load_check import LoadCheckError
    from serving.reexport import reexport

    try:
        version, result = reexport(args.model_base_path, args.version)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except LoadCheckError as error:
        print(f"error: the re-export still fails under TF Serving's loader, nothing was "
              f"written: {error}", file=sys.stderr)
        return 1
    print(f"Version {args.version} of {args.model_name} re-exported as version {version} "
          f"({result.path}); TF Serving's loader runs it ({result.variables} variables, "
          f"{result.warmup_requests} warmup requests, signatures "
          f"{', '.join(result.signatures_queried)}). Same weights and outputs: a server "
          f"following the newest version serves it next; with labels, move one onto it.")
    return 0


def _print_versions(args) -> None:
    from components.contract import SAVED_MODEL_FILE, ready_versions
    from serving import labels

    policy = labels.read_policy(args.model_base_path, args.model_name)
    on_disk = sorted(int(name) for name in os.listdir(args.model_base_path) if name.isdigit())
    ready = set(ready_versions(args.model_base_path))
    if policy is None or policy.versions is None:
        newest = policy.num_versions if policy else 1
        served = set(sorted(ready, reverse=True)[:newest])
        rule = (f"the newest {newest} versions (no labels)" if newest > 1 else
                "the newest version (no labels)")
    else:
        served = set(policy.versions)
        rule = f"labelled versions only ({labels.config_path(args.model_base_path)})"
    states = labels.server_version_states(args.server, args.model_name) if args.server else {}
    by_version = {}
    for label, version in (policy.labels if policy else {}).items():
        by_version.setdefault(version, []).append(label)
    print(f"Served: {rule}")
    print(f"{'version':>12}  {'on disk':<10}  {'policy':<10}  {'server':<10}  labels")
    for version in sorted(set(on_disk) | served, reverse=True):
        disk = ("ready" if version in ready else f"no {SAVED_MODEL_FILE}"
                if version in on_disk else "missing")
        server = states.get(version, ("-" if not args.server else "unknown",))[0]
        print(f"{version:>12}  {disk:<10}  {'served' if version in served else '-':<10}  "
              f"{server:<10}  {', '.join(sorted(by_version.get(version, [])))}")


def main(argv=None) -> int:
    # google-api-core warns that Python 3.10 is old; TFX 1.16 supports nothing newer.
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "predict":
        return _predict(args)
    if args.command == "proxy":
        return _proxy(args)
    if args.command == "check":
        return _check(args)
    if args.command == "reexport":
        return _reexport(args)
    return _labels(args)


if __name__ == "__main__":
    sys.exit(main())
