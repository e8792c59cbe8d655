"""Load test of ``knucaptcha serve``: concurrent clients posting captchas to ``/v1/solve`` on loopback.

Starts the service in a subprocess on 127.0.0.1 at a free port, waits for
``/healthz``, then has ``--clients`` httpx clients post generated ``knu``
captchas (one stream of distinct images) until ``--requests`` are done or
``--duration`` seconds pass, and prints requests/s and latency percentiles.
The client runs on the same machine, so its CPU counts against the server's.

    python benchmarks/serve_load.py --model path/to/model.onnx
    python benchmarks/serve_load.py --model m.onnx --raw --requests 10000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np

from knucaptcha.generator import encode_png, generate_samples, get_style

STARTUP_TIMEOUT = 60.0
IMAGES = 256  # distinct captchas cycled through, so no layer can cache one answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="Model file or bundled name (default: the bundled one).")
    parser.add_argument("--clients", type=int, default=32, help="Concurrent clients (default 32).")
    parser.add_argument("--requests", type=int, default=5000, help="Requests to send, at most (default 5000).")
    parser.add_argument("--duration", type=float, default=30.0, help="Stop after this many seconds (default 30).")
    parser.add_argument("--warmup", type=int, default=200, help="Requests sent first and not counted (default 200).")
    parser.add_argument("--raw", action="store_true", help="Send the PNG as the raw body instead of multipart.")
    parser.add_argument("--threads", type=int, default=1, help="The server's ONNX Runtime threads per inference.")
    args = parser.parse_args()
    if not 1 <= args.clients <= 1024 or args.requests < 1 or args.duration <= 0:
        parser.error("--clients must be 1..1024, --requests and --duration positive")

    style = get_style("knu", "mixed")
    images = [encode_png(sample.image) for sample in generate_samples(style, seed=2024, count=IMAGES)]
    with serving(args.model, args.threads) as (url, pid):
        asyncio.run(load(url, images, args.clients, args.warmup, args.duration, raw=args.raw))
        load_before = os.getloadavg()[0]
        server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
        latencies, failures, wall = asyncio.run(
            load(url, images, args.clients, args.requests, args.duration, raw=args.raw)
        )
        cpu = (cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu)
    report(args, latencies, failures, wall, load_before, cpu)


@contextmanager
def serving(model: str, threads: int) -> Iterator[tuple[str, int]]:
    """Run ``knucaptcha serve`` on a free loopback port; yields its URL and process id, stops it after."""
    port = free_port()
    command = [
        sys.executable, "-m", "knucaptcha", "serve", "--model", model, "--port", str(port),
        "--threads", str(threads), "--no-access-log",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, url)
        yield url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(server: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}:\n{server.stderr.read()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer /healthz within {STARTUP_TIMEOUT:.0f} s")


async def load(
    url: str, images: list[bytes], clients: int, count: int, duration: float, *, raw: bool
) -> tuple[list[float], int, float]:
    """Send up to ``count`` requests from ``clients`` concurrent tasks for at most ``duration`` seconds.

    Returns the latencies (seconds) of the successful requests, the number of
    failed ones, and the wall time.
    """
    bodies = [(image, {"content-type": "image/png"}) if raw else multipart(image) for image in images]
    latencies: list[float] = []
    failures = 0
    issued = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            nonlocal issued, failures
            while issued < count and time.perf_counter() < deadline:
                body, headers = bodies[issued % len(bodies)]
                issued += 1
                sent = time.perf_counter()
                try:
                    response = await client.post("/v1/solve", content=body, headers=headers)
                except httpx.TransportError:
                    failures += 1  # e.g. a keep-alive connection the server closed as it was reused
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - sent)
                else:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
        return latencies, failures, time.perf_counter() - start


def multipart(image: bytes) -> tuple[bytes, dict[str, str]]:
    """The multipart body with ``image`` as field ``file``, encoded once by httpx (the client's CPU goes
    to HTTP, not to re-encoding the same form on every request), and its content-type header."""
    request = httpx.Request("POST", "http://127.0.0.1/", files={"file": ("captcha.png", image, "image/png")})
    return request.read(), {"content-type": request.headers["content-type"]}


def report(
    args: argparse.Namespace,
    latencies: list[float],
    failures: int,
    wall: float,
    load_before: float,
    cpu: tuple[float, float],
) -> None:
    done = np.array(latencies) * 1000
    body = "raw body" if args.raw else "multipart"
    print(f"POST /v1/solve ({body}), {args.clients} clients, model {args.model}, server threads {args.threads}")
    print(f"machine: {os.cpu_count()} CPUs, 1-minute load average {load_before:.2f} before the run")
    print(f"requests: {len(done)} ok, {failures} failed, in {wall:.2f} s")
    if len(done):
        p50, p90, p99 = np.percentile(done, [50, 90, 99])
        print(f"throughput: {len(done) / wall:.0f} requests/s")
        print(f"latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {done.max():.1f}")
        server, client = (seconds * 1000 / len(done) for seconds in cpu)
        print(f"CPU ms per request: server {server:.2f}, client {client:.2f}")


if __name__ == "__main__":
    main()
