"""Ray Serve's side: one deployment (defaults: one replica, Ray's HTTP proxy) on 127.0.0.1.

Run inside the Ray venv AND a loopback-only network namespace (Ray binds every interface):
``python serving_ray.py KIND PORT CACHE_DIR``; prints READY when it answers, then serves
until SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np
import ray
from ray import serve
from serving_models import cached
from starlette.requests import Request


def main() -> None:
    kind, port, cache = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    @serve.deployment
    class Digits:
        def __init__(self) -> None:
            self.model = cached(kind, cache)

        async def __call__(self, request: Request) -> dict[str, list[int]]:
            body = await request.json()
            return {"outputs": self.model.predict(np.asarray(body["inputs"])).tolist()}

    serve.run(Digits.bind(), route_prefix="/")
    print("READY", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
