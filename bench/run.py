"""``python -m bench`` (``make bench``): run the measurements, print the table, save the JSON.

Everything of a run happens in one temporary directory (stores, logs, load
generator output), removed at the end unless ``--keep-temp``; the only file
written elsewhere is the results JSON (bench/results/latest.json by default).
Every process started is stopped on the way out, Ctrl-C and errors included.
"""

import argparse
import datetime
import json
import os
import platform
import pstats
import re
import shutil
import signal
import sys
import tempfile
import time

from bench import report, scenarios
from bench.procs import Fleet

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PHASES = ("converge", "baseline", "steady", "placement", "api", "one-compute", "memory",
          "etcd")
_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ms|s|m)?")


def duration(text):
    """"20ms", "15s", "2m" or a number of seconds (0 allowed)."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError("%r is not a duration (like 20ms, 15s or 2m)" % text)
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]


def sizes(text):
    try:
        values = sorted({int(v.replace("_", "")) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a list of sizes like 100,1000" % text) \
            from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return values


def positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more, got %d" % value)
    return value


def names(choices):
    def parse(text):
        values = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in values if v not in choices]
        if unknown:
            raise argparse.ArgumentTypeError("unknown %s (choose from %s)"
                                             % (", ".join(unknown), ", ".join(choices)))
        return values
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="make bench BENCH_ARGS=...", description=__doc__.split("\n\n")[0],
        epilog="Each measurement is described in bench/README.md.")
    parser.add_argument("--sizes", type=sizes, default=[100, 1000, 10000],
                        help="services per convergence run (default 100,1000,10000)")
    parser.add_argument("--computes", type=int, default=4,
                        help="computes (simulated connector processes) per run (default 4)")
    parser.add_argument("--latency", type=duration, default=0.020,
                        help="simulated connectors' time per call (default 20ms)")
    parser.add_argument("--protocol", type=names(list(scenarios.PROTOCOLS)),
                        default=list(scenarios.PROTOCOLS),
                        help="connector protocols to measure (default: all; those not "
                        "implemented yet print n/a)")
    parser.add_argument("--baseline-max", type=int, default=1000,
                        help="largest N the sequential baseline really runs; larger N are "
                        "extrapolated from it (default 1000)")
    parser.add_argument("--poll-interval", type=duration, default=15.0,
                        help="the controller's poll interval, and the steady-state window "
                        "(default 15s, genisys' default)")
    parser.add_argument("--timeout", type=duration, default=600.0,
                        help="longest a convergence run may take (default 10m)")
    parser.add_argument("--api-clients", type=int, default=64)
    parser.add_argument("--api-duration", type=duration, default=10.0,
                        help="measured seconds per API phase (default 10s)")
    parser.add_argument("--api-rounds", type=positive, default=3,
                        help="runs of the API's upscales, closed and due at a rate, one "
                        "after another; their median is kept (default 3)")
    parser.add_argument("--api-keys", type=int, default=1000,
                        help="services the API upscales are spread over (default 1000)")
    parser.add_argument("--placement-services", type=int, default=10000,
                        help="placed services of the placement phase (default 10000; its "
                        "targets are for 10000)")
    parser.add_argument("--etcd-services", type=int, default=1000,
                        help="services of the etcd phase's convergence run, on every "
                        "compute (default 1000)")
    parser.add_argument("--skip", type=names(PHASES), default=[],
                        help="phases to leave out: %s" % ", ".join(PHASES))
    parser.add_argument("--controller-arg", action="append", default=[], metavar="FLAG",
                        help="extra flag for every controller, e.g. "
                        "--controller-arg=--reconciler-workers=64 (repeatable)")
    parser.add_argument("--profile", type=int, metavar="N", default=None,
                        help="also run N services under cProfile (figures not used); "
                        "writes bench/results/profile-N.txt")
    parser.add_argument("--output", default=os.path.relpath(os.path.join(RESULTS_DIR,
                                                                         "latest.json")),
                        help="results JSON (default bench/results/latest.json)")
    parser.add_argument("--keep-temp", action="store_true",
                        help="keep the temporary directory (stores, logs) and print its path")
    return parser


def progress(message):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


def machine():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "system": platform.platform(),
            "python": platform.python_version(), "load_start": os.getloadavg()[0]}


def _terminate(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def run(args, settings, results):
    selected = [scenarios.PROTOCOLS[name] for name in args.protocol]
    runnable = [p for p in selected if p.unavailable is None]
    results["protocols"] = [p.name for p in runnable]
    results["protocols_skipped"] = {p.name: p.unavailable for p in selected if p.unavailable}
    results.update(convergence=[], baseline=[], steady_state=[], placement=None, api=None,
                   one_compute=None, memory_burst=None, etcd=None)
    largest = max(args.sizes)

    with Fleet(settings.workdir) as fleet:
        if "converge" in args.skip:
            runnable = []
        for protocol in runnable:
            for n in args.sizes:
                keep = n == largest and "steady" not in args.skip
                progress("convergence, %s protocol, %d services x %d computes"
                         % (protocol.name, n, settings.computes))
                row, kept = scenarios.convergence(fleet, settings, protocol, n, keep=keep)
                results["convergence"].append(row)
                progress("  %s s (%s)" % (report.fmt(row["seconds"], 2),
                                          "converged" if row["converged"] else "NOT converged"))
                if kept:
                    progress("steady state, %s protocol, %d services (two %g s windows)"
                             % (protocol.name, n, settings.poll_interval))
                    results["steady_state"].append(
                        scenarios.steady_state(fleet, settings, protocol, n, *kept))
                    fleet.stop(*kept[1])

        if "placement" not in args.skip:
            progress("placement, %d services x a total of %d, Spread over %d computes (batch)"
                     % (settings.placement_services, settings.placement_total,
                        settings.placement_computes))
            row = results["placement"] = scenarios.placement(fleet, settings)
            progress("  %s s (%s), placement %s CPU-s for %s decisions" % (
                report.fmt(row["seconds"], 2), "converged" if row["converged"]
                else "NOT converged", report.fmt(row["placement_cpu_seconds"], 3),
                report.fmt(row["decisions"])))

        if "baseline" not in args.skip:
            measured = [n for n in args.sizes if n <= args.baseline_max] or [args.baseline_max]
            for n in measured:
                progress("sequential baseline, %d services x %d computes" % (n, settings.computes))
                results["baseline"].append(scenarios.baseline(fleet, settings, n))
                progress("  %.1f s" % results["baseline"][-1]["seconds"])
            source = results["baseline"][-1]
            for n in args.sizes:
                if n > args.baseline_max:
                    results["baseline"].append(scenarios.extrapolate_baseline(source, n))

        if "api" not in args.skip:
            progress("API, %d clients, %g s per phase" % (settings.api_clients,
                                                          settings.api_duration))
            results["api"] = scenarios.api(fleet, settings, upscale_rate=_etcd_target_rate)

        if "etcd" not in args.skip:
            unavailable = scenarios.etcd_available()
            if unavailable:
                results["etcd"] = {"unavailable": unavailable}
                progress("etcd: skipped (%s)" % unavailable)
            else:
                if results["api"] is None:
                    progress("API on SQLite, the etcd figures' reference")
                    results["api"] = scenarios.api(fleet, settings,
                                                   upscale_rate=_etcd_target_rate)
                progress("etcd: the API and %d services x %d computes, plain and TLS"
                         % (args.etcd_services, settings.computes))
                # etcd's upscales go at the rate SQLite's gave, not at their own.
                rate = _etcd_target_rate(results["api"]["upscale"])
                results["etcd"] = scenarios.etcd(fleet, settings, services=args.etcd_services,
                                                 upscale_rate=lambda _upscales: rate)

        if "one-compute" not in args.skip:
            progress("convergence and sequential baseline, %d services x 1 compute"
                     % settings.one_compute_services)
            results["one_compute"] = scenarios.one_compute(fleet, settings)
            row = results["one_compute"]["convergence"]
            progress("  genisys %s s, baseline %.1f s" % (
                report.fmt(row["seconds"], 2) if row["converged"] else "timeout",
                results["one_compute"]["baseline"]["seconds"]))

        if "memory" not in args.skip:
            progress("memory after a burst of upscales (%d clients, %g s, %d services)"
                     % (settings.burst_clients, settings.burst_duration,
                        settings.burst_services))
            results["memory_burst"] = scenarios.memory_burst(fleet, settings)
            progress("  %s MB held" % report.fmt(results["memory_burst"]["held_mb"]))

        if args.profile:
            profile(fleet, settings, args.profile, os.path.dirname(args.output))
    # Once every process has stopped: what they logged at their stop counts too.
    results["faults"] = {name: {"lines": count, "first": first}
                         for name, (count, first) in fleet.faults().items()}


def profile(fleet, settings, services, directory):
    """One more convergence run under cProfile; the top functions go to a text file."""
    progress("profiled convergence run, %d services (figures not used)" % services)
    raw = os.path.join(settings.workdir, "controller.prof")
    scenarios.convergence(fleet, settings, scenarios.PROTOCOLS["per-service"], services,
                          profile_to=raw)
    path = os.path.join(directory, "profile-%d.txt" % services)
    with open(path, "w", encoding="utf-8") as out:
        stats = pstats.Stats(raw, stream=out)
        for key in ("tottime", "cumulative"):
            out.write("== controller, %d services, sorted by %s ==\n" % (services, key))
            stats.sort_stats(key).print_stats(40)
    progress("profile written to %s" % path)


def _etcd_target_rate(sqlite_upscales):
    """The rate etcd's upscales are measured at for issue 18's p99 (a share of the SQLite
    store's in the same run; docs/performance.md, "i. etcd"); SQLite is measured at it
    too, as the reference."""
    return report.ETCD_UPSCALE_SHARE * sqlite_upscales["ok_per_second"]


def main(argv=None):
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    workdir = tempfile.mkdtemp(prefix="genisys-bench-")
    settings = scenarios.Settings(
        workdir=workdir, computes=args.computes, latency=args.latency,
        poll_interval=args.poll_interval, timeout=args.timeout, api_clients=args.api_clients,
        api_duration=args.api_duration, api_keys=args.api_keys, api_rounds=args.api_rounds,
        placement_services=args.placement_services, controller_args=tuple(args.controller_arg))
    results = {
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {"sizes": args.sizes, "computes": args.computes,
                     "latency_ms": args.latency * 1000.0, "poll_interval": args.poll_interval,
                     "timeout": args.timeout, "baseline_max": args.baseline_max,
                     "api_clients": args.api_clients, "api_duration": args.api_duration,
                     "api_warmup": settings.api_warmup, "api_keys": args.api_keys,
                     "api_rounds": args.api_rounds,
                     "placement_services": args.placement_services,
                     "controller_args": list(args.controller_arg), "skip": args.skip},
    }
    started = time.monotonic()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        run(args, settings, results)
    except KeyboardInterrupt:
        progress("interrupted: every process stopped, no results written")
        return 130
    except RuntimeError as e:
        progress("failed: %s" % e)
        return 1
    finally:
        if args.keep_temp:
            progress("temporary files kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_end"] = os.getloadavg()[0]
    results["duration_seconds"] = time.monotonic() - started
    results["targets"] = [v.to_json() for v in report.evaluate(results)]
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    print(report.render(results))
    print("\n(run in %.0f s; figures in %s)" % (results["duration_seconds"], args.output))
    return 0
