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

``--malformed F`` makes that share of the requests, spread evenly, malformed
ones a careless or hostile client sends (text, a truncated PNG, a
decompression bomb, a form without its field, broken multipart, a bad query,
an unknown model, a body over the size limit). The report then counts the
answers by status, which should hold no 5xx, and the server's resident memory
after the warm-up and after the run, which should stay flat.

    python benchmarks/serve_load.py --model path/to/model.onnx
    python benchmarks/serve_load.py --model m.onnx --raw --requests 10000
    python benchmarks/serve_load.py --model m.onnx --rate 500
    python benchmarks/serve_load.py --malformed 0.01 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections import Counter
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
MAX_UPLOAD_BYTES = 1_000_000  # the server's --max-upload-bytes default, which the over-long body passes


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
    parser.add_argument("--malformed", type=float, default=0.0, help="Share of malformed requests (default 0).")
    args = parser.parse_args()
    bad_rate = args.rate is not None and args.rate <= 0
    if not 1 <= args.clients <= 1024 or args.requests < 1 or args.duration <= 0 or bad_rate:
        parser.error("--clients must be 1..1024, --requests, --duration and --rate positive")
    if not 0 <= args.malformed < 1:
        parser.error("--malformed must lie in [0, 1)")

    style = get_style("knu", "mixed")
    images = [encode_png(sample.image) for sample in generate_samples(style, seed=2024, count=IMAGES)]
    with serving(args.model, args.threads) as (port, pid):
        requests = [solve_request(image, port, raw=args.raw) for image in images]
        if args.malformed:
            requests = mixed(requests, malformed_requests(images[0], port), args.malformed)
        run(load(port, requests, args.clients, args.warmup, args.duration, args.rate))
        load_before = os.getloadavg()[0]
        memory = [resident_mb(pid)]
        server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
        tally = run(load(port, requests, args.clients, args.requests, args.duration, args.rate))
        cpu = (cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu)
        memory.append(resident_mb(pid))
    report(args, tally, load_before, cpu, memory)


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


def resident_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        kilobytes = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kilobytes / 1024


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


def solve_request(image: bytes, port: int, *, raw: bool, field: str = "file", query: str = "") -> bytes:
    """The whole HTTP/1.1 request posting ``image`` to ``/v1/solve``, encoded once and sent as is."""
    if raw:
        return post(port, f"/v1/solve{query}", "image/png", image)
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="captcha.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return post(port, f"/v1/solve{query}", f"multipart/form-data; boundary={BOUNDARY}", body)


def post(port: int, path: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def malformed_requests(image: bytes, port: int) -> list[bytes]:
    """One of each kind of bad request the service must refuse with a 4xx, never a 5xx."""
    return [
        solve_request(b"hello, this is text", port, raw=True),
        solve_request(image[: len(image) // 2], port, raw=True),  # truncated
        solve_request(bomb_png(), port, raw=True),  # 400 M pixels in 50 KB
        solve_request(image, port, raw=False, field="image"),  # the form lacks 'file'
        post(port, "/v1/solve", f"multipart/form-data; boundary={BOUNDARY}", b"--" + BOUNDARY.encode() + b"\r\n"),
        solve_request(image, port, raw=True, query="?beam=-1"),
        solve_request(image, port, raw=True, query="?model=nope"),
        solve_request(bytes(MAX_UPLOAD_BYTES + 1), port, raw=True),  # over the size limit
    ]


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of zero pixels: small on the wire, 400 M pixels if decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def mixed(good: list[bytes], bad: list[bytes], share: float) -> list[bytes]:
    """``good`` and ``bad`` requests cycled into one list in which ``share`` of them, spread evenly, are bad."""
    total = max(len(good), round(len(bad) / share))
    bad_slots = [int((i + 1) * share) > int(i * share) for i in range(total)]
    bad_order, good_order = iter(range(total)), iter(range(total))
    return [bad[next(bad_order) % len(bad)] if slot else good[next(good_order) % len(good)] for slot in bad_slots]


@dataclass
class Tally:
    """What a load run counted: latencies (seconds) of the 200 answers, every answer's status
    (0: the connection failed), and the wall time."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
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
            tally.statuses[status] += 1
            if status == 200:
                tally.latencies.append(time.perf_counter() - sent)
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


def report(
    args: argparse.Namespace, tally: Tally, load_before: float, cpu: tuple[float, float], memory: list[float]
) -> None:
    done = np.array(tally.latencies) * 1000
    body = "raw body" if args.raw else "multipart"
    pace = "flat out" if args.rate is None else f"{args.rate:g} requests/s offered"
    bad = f", {args.malformed:.1%} malformed" if args.malformed else ""
    print(
        f"POST /v1/solve ({body}{bad}), {args.clients} clients {pace}, model {args.model}, "
        f"server threads {args.threads}"
    )
    print(f"machine: {os.cpu_count()} CPUs, 1-minute load average {load_before:.2f} before the run")
    print(f"requests: {len(done)} ok, {tally.statuses.total() - len(done)} not, in {tally.wall:.2f} s")
    print("statuses: " + ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(tally.statuses.items())))
    print(f"server RSS: {memory[0]:.1f} MB after the warm-up, {memory[1]:.1f} MB after the run")
    if len(done):
        p50, p90, p99 = np.percentile(done, [50, 90, 99])
        print(f"throughput: {len(done) / tally.wall:.0f} requests/s")
        print(f"latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {done.max():.1f}")
        server, client = (seconds * 1000 / len(done) for seconds in cpu)
        print(f"CPU ms per request: server {server:.2f}, client {client:.2f}")


if __name__ == "__main__":
    main()
