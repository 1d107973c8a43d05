"""A small client for the served model, over REST or gRPC (TF Serving's APIs, so it
works against TF Serving itself as well as the embedded server).

    from serving.client import connect
    client = connect("http://127.0.0.1:8501", "cifar10")        # or "127.0.0.1:8500", grpc=True
    for prediction in client.predict([open("cat.png", "rb").read()]):
        print(prediction.class_name, prediction.probability)
"""

from __future__ import annotations

import base64
import dataclasses
import json
import urllib.error
import urllib.request
from typing import List, Optional, Sequence

from components.contract import (CLASS_IDS_OUTPUT, CLASS_NAMES_OUTPUT, DEFAULT_SIGNATURE,
                                 IMAGES_INPUT, PROBABILITIES_OUTPUT)


class ServingRequestError(Exception):
    """The server refused a request; `status` is the HTTP status or gRPC code name."""

    def __init__(self, status, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class Prediction:
    class_id: int
    class_name: str
    probability: float
    probabilities: List[float]


def predictions_of(class_ids, class_names, probabilities) -> List[Prediction]:
    return [Prediction(int(class_id), name.decode() if isinstance(name, bytes) else name,
                       float(probs[int(class_id)]), [float(p) for p in probs])
            for class_id, name, probs in zip(class_ids, class_names, probabilities)]


class RestClient:
    def __init__(self, server_url: str, model_name: str, version: Optional[int] = None,
                 timeout: float = 60.0):
        self.model_url = f"{server_url.rstrip('/')}/v1/models/{model_name}" + (
            f"/versions/{version}" if version is not None else "")
        self.timeout = timeout

    def _call(self, url: str, payload: Optional[dict] = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                message = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                message = body.decode(errors="replace")
            raise ServingRequestError(error.code, message) from None

    def predict(self, images: Sequence[bytes]) -> List[Prediction]:
        """Class, name and probabilities of each encoded (PNG/JPEG) image."""
        response = self._call(f"{self.model_url}:predict", {
            "signature_name": DEFAULT_SIGNATURE,
            "instances": [{"b64": base64.b64encode(image).decode("ascii")}
                          for image in images]})
        rows = response["predictions"]
        return predictions_of([row[CLASS_IDS_OUTPUT] for row in rows],
                            [row[CLASS_NAMES_OUTPUT] for row in rows],
                            [row[PROBABILITIES_OUTPUT] for row in rows])

    def status(self) -> dict:
        return self._call(self.model_url)

    def metadata(self) -> dict:
        return self._call(f"{self.model_url}/metadata")


class GrpcClient:
    def __init__(self, target: str, model_name: str, version: Optional[int] = None,
                 timeout: float = 60.0, max_message_bytes: int = 64 * 1024 * 1024):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.model_name = model_name
        self.version = version
        self.timeout = timeout
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def predict(self, images: Sequence[bytes]) -> List[Prediction]:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = DEFAULT_SIGNATURE
        if self.version is not None:
            request.model_spec.version.value = self.version
        request.inputs[IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string))
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingRequestError(error.code().name, error.details()) from None
        return predictions_of(tf.make_ndarray(response.outputs[CLASS_IDS_OUTPUT]),
                            tf.make_ndarray(response.outputs[CLASS_NAMES_OUTPUT]),
                            tf.make_ndarray(response.outputs[PROBABILITIES_OUTPUT]))

    def close(self) -> None:
        self.channel.close()


def connect(server: str, model_name: str, grpc: bool = False,
            version: Optional[int] = None, timeout: float = 60.0):
    """A REST client for `http://host:port`, a gRPC one for `host:port` with grpc=True."""
    if grpc:
        return GrpcClient(server.removeprefix("grpc://"), model_name, version, timeout)
    if not server.startswith(("http://", "https://")):
        server = f"http://{server}"
    return RestClient(server, model_name, version, timeout)
