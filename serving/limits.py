"""What one request, one connection and one client may cost the embedded server.

Every limit is answered with TF Serving's error shape and a status that names it, and
the server goes on serving:
- a body over `max_request_bytes`: REST 413, gRPC RESOURCE_EXHAUSTED (gRPC's own
  message limit is set to the same number);
- JSON nested deeper than `max_json_depth`: 400 (the deepest legal request, pixels in
  row format, is 5 levels);
- more than `max_batch_size` instances in one request: 400 / INVALID_ARGUMENT. With
  the header check in the exported graph (`components.export.image_header`), this bounds what
  a request can make the model allocate (docs/BENCHMARKS.md gives the figure), and at
  most `max_concurrent_inferences` requests run the model at once (others wait), so
  the model's memory is bounded across clients too;
- a client that has not sent a whole request line and headers within `read_timeout_s`
  is disconnected; one that does not send the whole body it announced within that time
  gets 408 and is disconnected;
- more than `max_connections` REST connections at once: 503 for the next one.
"""

from __future__ import annotations

import dataclasses
import threading

from serving.errors import invalid


@dataclasses.dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 8 * 1024 * 1024
    max_json_depth: int = 32
    max_batch_size: int = 64
    max_concurrent_inferences: int = 4
    read_timeout_s: float = 30.0
    max_connections: int = 64
    grpc_workers: int = 16

    def check(self) -> None:
        for name in ("max_request_bytes", "max_json_depth", "max_batch_size",
                     "max_concurrent_inferences", "max_connections", "grpc_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.read_timeout_s <= 0:
            raise ValueError(f"read_timeout_s must be > 0, got {self.read_timeout_s}")

    def check_batch(self, count: int, what: str = "instances") -> None:
        """Refuses a request of more than max_batch_size items, before anything is built
        from them."""
        if count > self.max_batch_size:
            raise invalid(f"the request holds {count} {what}, over the limit of "
                          f"{self.max_batch_size} per request")

    def inference_slots(self) -> threading.BoundedSemaphore:
        """What REST and gRPC share so that at most max_concurrent_inferences requests
        run the model at once."""
        return threading.BoundedSemaphore(self.max_concurrent_inferences)
