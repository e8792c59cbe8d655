"""Load test of ``knucaptcha serve``: concurrent clients posting captchas to ``/v1/solve`` on loopback.

Starts the service in a subprocess on 127.0.0.1 at a free port, waits for
``/healthz``, then has ``--clients`` keep-alive connections post generated
``knu`` captchas (one stream of distinct images) until ``--requests`` are done
or ``--duration`` seconds pass, and prints requests/s, latency percentiles and
CPU per request. The client runs on the same machine, so its CPU counts against
the server's; it is a bare HTTP/1.1 client (requests encoded once, responses
read by ``Content-Length``) so that it takes as little as it can.

By default each client sends its next request as soon as the last is answered
(a closed loop: it measures the most the service does, and then latency is
about clients / throughput). ``--rate`` sends on a fixed schedule instead (an
open loop), timing each request from when it was due, so latency at a given
load counts the time a request waited for a free connection.

    python benchmarks/serve_load.py --model path/to/model.onnx
    python benchmarks/serve_load.py --model m.onnx --raw --requests 10000
    python benchmarks/serve_load.py --model m.onnx --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.error import URLError

import numpy as np

from knucaptcha.generator import encode_png, generate_samples, get_style

try:  # the serve extra installs uvloop; the client is lighter on it too
    import uvloop
except ImportError:
    uvloop = None

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
DRAIN_TIMEOUT = 30.0  # how long requests still in flight at the deadline may take to finish
IMAGES = 256  # distinct captchas cycled through, so no layer can cache one answer
BOUNDARY = "knucaptcha-load-boundary"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="Model file or bundled name (default: the bundled one).")
    parser.add_argument("--clients", type=int, default=32, help="Concurrent connections (default 32).")
    parser.add_argument("--requests", type=int, default=5000, help="Requests to send, at most (default 5000).")
    parser.add_argument("--duration", type=float, default=30.0, help="Stop after this many seconds (default 30).")
    parser.add_argument("--warmup", type=int, default=200, help="Requests sent first and not counted (default 200).")
    parser.add_argument("--raw", action="store_true", help="Send the PNG as the raw body instead of multipart.")
    parser.add_argument("--rate", type=float, help="Send this many requests/s on a schedule (default: flat out).")
    parser.add_argument("--threads", type=int, default=1, help="The server's ONNX Runtime threads per inference.")
    args = parser.parse_args()
    bad_rate = args.rate is not None and args.rate <= 0
    if not 1 <= args.clients <= 1024 or args.requests < 1 or args.duration <= 0 or bad_rate:
        parser.error("--clients must be 1..1024, --requests, --duration and --rate positive")

    style = get_style("knu", "mixed")
    images = [encode_png(sample.image) for sample in generate_samples(style, seed=2024, count=IMAGES)]
    with serving(args.model, args.threads) as (port, pid):
        requests = [solve_request(image, port, raw=args.raw) for image in images]
        run(load(port, requests, args.clients, args.warmup, args.duration, args.rate))
        load_before = os.getloadavg()[0]
        server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
        tally = run(load(port, requests, args.clients, args.requests, args.duration, args.rate))
        cpu = (cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu)
    report(args, tally, load_before, cpu)


@contextmanager
def serving(model: str, threads: int) -> Iterator[tuple[int, int]]:
    """Run ``knucaptcha serve`` on a free loopback port; yields the port and process id, stops it after."""
    port = free_port()
    command = [
        sys.executable, "-m", "knucaptcha", "serve", "--model", model, "--host", HOST, "--port", str(port),
        "--threads", str(threads), "--no-access-log",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(server, f"http://{HOST}:{port}/healthz")
        yield port, server.pid
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
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_until_up(server: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}:\n{server.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (URLError, ConnectionError):
            pass  # not listening yet
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer /healthz within {STARTUP_TIMEOUT:.0f} s")


def solve_request(image: bytes, port: int, *, raw: bool) -> bytes:
    """The whole HTTP/1.1 request posting ``image`` to ``/v1/solve``, encoded once and sent as is."""
    if raw:
        content_type, body = "image/png", image
    else:
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
        body = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="captcha.png"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()
        )
    head = (
        f"POST /v1/solve HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass
class Tally:
    """What a load run counted: latencies (seconds) of the 200 answers, everything else, and the wall time."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    wall: float = 0.0


def run(coroutine: Coroutine[Any, Any, Tally]) -> Tally:
    """Run a load on uvloop when it is installed, else on asyncio's own loop."""
    return asyncio.run(coroutine) if uvloop is None else uvloop.run(coroutine)


async def load(
    port: int, requests: list[bytes], clients: int, count: int, duration: float, rate: float | None = None
) -> Tally:
    """Send up to ``count`` of ``requests`` (cycled) over ``clients`` keep-alive connections for at most
    ``duration`` seconds, then wait for those in flight (at most :data:`DRAIN_TIMEOUT` seconds).

    Without ``rate`` a connection sends as soon as its last answer is in; with
    it, request ``i`` is due ``i / rate`` seconds after the start and timed from then.
    """
    tally = Tally()
    issued = 0
    connections = await asyncio.gather(*(asyncio.open_connection(HOST, port) for _ in range(clients)))

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            sent = time.perf_counter() if rate is None else start + issued / rate
            if sent >= deadline:
                break
            request = requests[issued % len(requests)]
            issued += 1
            if sent > time.perf_counter():
                await asyncio.sleep(sent - time.perf_counter())
            writer.write(request)
            try:
                status, closing = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                status, closing = 0, True
            if status == 200:
                tally.latencies.append(time.perf_counter() - sent)
            else:
                tally.failures += 1
            if closing:  # the server closed (or will close) this connection: open another
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
        writer.close()

    start = time.perf_counter()
    deadline = start + duration
    await asyncio.wait_for(asyncio.gather(*(client(*pair) for pair in connections)), duration + DRAIN_TIMEOUT)
    tally.wall = time.perf_counter() - start
    return tally


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response (status line, headers, ``Content-Length`` bytes of body); its status and
    whether the server will close the connection after it."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    length = 0
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
    await reader.readexactly(length)
    return int(head[9:12]), b"\r\nconnection: close\r\n" in head


def report(args: argparse.Namespace, tally: Tally, load_before: float, cpu: tuple[float, float]) -> None:
    done = np.array(tally.latencies) * 1000
    body = "raw body" if args.raw else "multipart"
    pace = "flat out" if args.rate is None else f"{args.rate:g} requests/s offered"
    print(f"POST /v1/solve ({body}), {args.clients} clients {pace}, model {args.model}, server threads {args.threads}")
    print(f"machine: {os.cpu_count()} CPUs, 1-minute load average {load_before:.2f} before the run")
    print(f"requests: {len(done)} ok, {tally.failures} failed, in {tally.wall:.2f} s")
    if len(done):
        p50, p90, p99 = np.percentile(done, [50, 90, 99])
        print(f"throughput: {len(done) / tally.wall:.0f} requests/s")
        print(f"latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {done.max():.1f}")
        server, client = (seconds * 1000 / len(done) for seconds in cpu)
        print(f"CPU ms per request: server {server:.2f}, client {client:.2f}")


if __name__ == "__main__":
    main()
