"""A small HTTP/1.1 load generator: C concurrent keep-alive clients for D seconds.

Runs as its own process (so it never shares an event loop, or a GIL, with
the server it measures)::

    python bench/loadgen.py --url http://127.0.0.1:7001 --method POST \\
        --path '/service/api-{key:05d}/upscale' --keys 1000 \\
        --body '{"compute": "c0"}' --clients 64 --duration 10 --warmup 1 --output out.json

Each client holds one connection and sends its next request as soon as the
answer to the last one has arrived (a closed loop, like ``wrk``). With
``--rate R`` the requests are due at a steady R per second instead (an open
loop, like ``wrk2``): each goes on the first of the C connections that is
free, and its latency counts from when it was due, so the time it waited for
a connection is counted too (no "coordinated omission"). ``{key}``
in the path takes the values 0, 1, ..., keys - 1 in turn across all clients;
``{key}`` in the body (``--body``) takes the same value as in its path, so
every request of a long run can carry a value of its own.
Writes one JSON object: the answers completed in the measured window (after
the warm-up), requests per second, latency percentiles in milliseconds, and
the 2xx answers of the whole run, warm-up and the last in-flight ones
included (what a server-side total must equal). Standard library only.
"""

import argparse
import asyncio
import collections
import itertools
import json
import sys
import time
import urllib.parse


class Run:
    def __init__(self, *, warmup_end, end, clients):
        self.warmup_end = warmup_end
        self.clients = clients
        self.end = end
        #: Latencies (seconds) of the answers completed in the measured window.
        self.latencies = []
        self.codes = collections.Counter()  # in the measured window
        self.errors = collections.Counter()  # transport failures, whole run
        self.total_ok = 0
        self.total = 0

    def record(self, status, started, finished):
        self.total += 1
        if 200 <= status < 300:
            self.total_ok += 1
        if self.warmup_end <= finished <= self.end:
            self.latencies.append(finished - started)
            self.codes[status] += 1


async def read_response(reader):
    """(status, keep_alive) of one answer; its body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, keep_alive = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
        elif name == b"transfer-encoding":
            raise ValueError("chunked answers are not supported")
    if length:
        await reader.readexactly(length)
    return status, keep_alive


def request_bytes(method, host, path, body):
    head = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host,
            "Accept: application/json"]
    if body is not None:
        head += ["Content-Type: application/json", "Content-Length: %d" % len(body)]
    data = ("\r\n".join(head) + "\r\n\r\n").encode("ascii")
    return data + (body or b"")


async def due_times(run, rate, due):
    """Put on ``due`` the moment each request is due, ``rate`` per second, until the end."""
    start = time.perf_counter()
    for i in itertools.count():
        moment = start + i / rate
        if moment > run.end:
            break
        delay = moment - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait(moment)
    for _ in range(run.clients):
        due.put_nowait(None)  # no more


async def client(args, run, keys, due=None):
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname, url.port or 80
    reader = writer = None
    while time.perf_counter() < run.end:
        started = None
        if due is not None:
            started = await due.get()
            if started is None:
                break
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            key = next(keys) % args.keys
            body = None
            if args.body is not None:
                body = args.body.replace("{key}", str(key)).encode("utf-8")
            request = request_bytes(args.method, url.netloc, args.path.format(key=key), body)
            if started is None:
                started = time.perf_counter()
            writer.write(request)
            status, keep_alive = await read_response(reader)
            run.record(status, started, time.perf_counter())
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, IndexError) as e:
            run.errors[type(e).__name__] += 1
            keep_alive = False
            await asyncio.sleep(0.01)
        if not keep_alive and writer is not None:
            writer.close()
            writer = reader = None
    if writer is not None:
        writer.close()


def percentile(ordered, fraction):
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered))) - 1))
    return ordered[index] * 1000.0


async def main_async(args):
    now = time.perf_counter()
    run = Run(warmup_end=now + args.warmup, end=now + args.warmup + args.duration,
              clients=args.clients)
    keys = itertools.count()
    cpu = time.process_time()
    due = None
    tasks = []
    if args.rate is not None:
        due = asyncio.Queue()
        tasks.append(due_times(run, args.rate, due))
    await asyncio.gather(*tasks, *(client(args, run, keys, due) for _ in range(args.clients)))
    cpu = time.process_time() - cpu
    ordered = sorted(run.latencies)
    ok = sum(n for code, n in run.codes.items() if 200 <= code < 300)
    return {
        "method": args.method, "path": args.path, "clients": args.clients,
        "rate": args.rate,
        "seconds": args.duration, "requests": len(ordered), "ok": ok,
        "requests_per_second": len(ordered) / args.duration,
        "ok_per_second": ok / args.duration,
        "p50_ms": percentile(ordered, 0.50), "p90_ms": percentile(ordered, 0.90),
        "p99_ms": percentile(ordered, 0.99), "max_ms": percentile(ordered, 1.0),
        "codes": {str(code): n for code, n in sorted(run.codes.items())},
        "transport_errors": dict(run.errors),
        "total_requests": run.total, "total_ok": run.total_ok,
        # Near 1 per second of run: the load generator, not the server, was the limit.
        "loadgen_cpu_seconds": cpu,
        "loadgen_cpu_share": cpu / (time.perf_counter() - now),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="server base URL (http only)")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--path", required=True, help="path template, {key} is replaced")
    parser.add_argument("--keys", type=int, default=1, help="values of {key}: 0 .. keys-1")
    parser.add_argument("--body", default=None,
                        help="JSON body of every request, {key} is replaced")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rate", type=float, default=None,
                        help="requests due per second, in all (an open loop); default: "
                        "each client sends as soon as it has its answer (a closed loop)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    parser.add_argument("--output", default="-", help="JSON result file (- : stdout)")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.output == "-":
        print(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
