"""The targets (issues 7 and 21, and placement's), judged from a run's results, and the
table printed for a run.

Both read only the results dict (what bench/results/latest.json holds), so a
saved run can be judged and printed again, and a new protocol or size is a
new row, not new code.
"""

import dataclasses
from typing import Optional

#: Issue 7's targets on its 2-core machine.
SPEEDUP_AT_1000 = 50.0
BATCH_SECONDS_AT_10000 = 5.0
PER_SERVICE_SECONDS_AT_10000 = 60.0
BATCH_RESYNC_CPU_SECONDS = 1.0
MEMORY_MB_AT_10000 = 150.0
PER_PAIR_SPREAD = 2.0
#: Issue 21's: shares of the no-work ceiling measured in the same run (the same
#: requests, the same load generator), ...
UPSCALE_SHARE = 0.60
UPSCALE_P99_MS = 35.0
COMPUTE_WRITE_SHARE = 0.70
GET_SHARE = 0.85
#: ... the speed-up over the sequential baseline on one compute ...
ONE_COMPUTE_SPEEDUP = 50.0
#: ... and what a burst of upscales may leave held above the idle RSS.
BURST_HELD_MB = 30.0
#: Placement's: the CPU of the placement decisions for 10,000 placed services (20 µs a
#: service), and their convergence: within the batch target above, and within this
#: factor of the per-compute batch run of the same size in the same bench run.
PLACEMENT_SERVICES = 10000
PLACEMENT_CPU_SECONDS = 0.2
PLACEMENT_CONVERGENCE_RATIO = 1.25
#: etcd's (issue 18): upscales on one local etcd member at least this share of the
#: SQLite store's rate in the same run (64 clients, each sending when answered), and
#: this p99 with upscales due at that rate (an open loop: the p99 of a closed loop of
#: 64 clients is at least 64 / rate, whatever the store); TLS at most this much slower.
ETCD_UPSCALE_SHARE = 0.5
ETCD_UPSCALE_P99_MS = 100.0
ETCD_TLS_COST = 0.15


@dataclasses.dataclass(frozen=True)
class Verdict:
    target: str
    #: True met, False not met, None not measurable in this run (``figure`` says why).
    met: Optional[bool]
    figure: str

    def to_json(self):
        return dataclasses.asdict(self)


def fmt(value, digits=1):
    """A number for the table: thousands separated, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, int) or digits == 0:
        return f"{int(round(value)):,}"
    return "{:,.{}f}".format(value, digits)


def _caught_up(upscale):
    """What the reconciler took to converge the upscales once they stopped."""
    after = upscale.get("converged_after_seconds")
    if after is None:
        return "NOT every service converged within 300 s of the last upscale"
    return ("every service converged %s s after the last upscale; the next phase began "
            "then, and the controller's CPU until then counts as the upscales'" % fmt(after, 2))


def _runs(figures):
    """Each run of a repeated load (``scenarios._median_run``): "2xx/s (p99 ms)"."""
    return ", ".join("%s/s (p99 %s ms)" % (fmt(run["ok_per_second"], 0), fmt(run["p99_ms"]))
                     for run in figures.get("runs", []))


def _convergence(results, protocol, services):
    for row in results.get("convergence", []):
        if row["protocol"] == protocol and row["services"] == services:
            return row
    return None


def _baseline(results, services):
    for row in results.get("baseline", []):
        if row["services"] == services:
            return row
    return None


def _steady(results, protocol, services=None):
    for row in results.get("steady_state", []):
        if row["protocol"] == protocol and services in (None, row["services"]):
            return row
    return None


def _unavailable(results, protocol):
    """Why ``protocol`` was not measured in this run, or None if it was."""
    skipped = results.get("protocols_skipped", {})
    if protocol in skipped:
        return skipped[protocol]
    if protocol not in results.get("protocols", []):
        return "not selected (--protocol)"
    return None


def _converged_within(results, protocol, services, limit, label):
    why = _unavailable(results, protocol)
    if why:
        return Verdict(label, None, "n/a: " + why)
    row = _convergence(results, protocol, services)
    if row is None:
        return Verdict(label, None, "n/a: N=%s not in --sizes" % fmt(services))
    if not row["converged"]:
        return Verdict(label, False, "not converged after %s s (%s of %s pairs)" % (
            fmt(results["settings"]["timeout"], 0), fmt(row["pairs_converged"]),
            fmt(row["pairs"])))
    return Verdict(label, row["seconds"] <= limit, "%s s" % fmt(row["seconds"], 2))


def evaluate(results):
    """A Verdict for every target of issue 7."""
    verdicts = []

    label = "N=1,000 x 4, per-service: >= %gx faster than the sequential baseline" \
        % SPEEDUP_AT_1000
    row, base = _convergence(results, "per-service", 1000), _baseline(results, 1000)
    if _unavailable(results, "per-service"):
        verdicts.append(Verdict(label, None, "n/a: " + _unavailable(results, "per-service")))
    elif row is None or base is None:
        verdicts.append(Verdict(label, None, "n/a: N=1,000 (or its baseline) not measured"))
    elif not row["converged"]:
        verdicts.append(Verdict(label, False, "genisys did not converge"))
    else:
        speedup = base["seconds"] / row["seconds"]
        verdicts.append(Verdict(label, speedup >= SPEEDUP_AT_1000, "%sx (genisys %s s, "
                                "baseline %s s%s)" % (fmt(speedup), fmt(row["seconds"], 2),
                                                      fmt(base["seconds"]), " extrapolated"
                                                      if base["extrapolated_from"] else "")))

    verdicts.append(_converged_within(
        results, "batch", 10000, BATCH_SECONDS_AT_10000,
        "N=10,000 x 4, batch extension: converged within %g s" % BATCH_SECONDS_AT_10000))
    verdicts.append(_converged_within(
        results, "per-service", 10000, PER_SERVICE_SECONDS_AT_10000,
        "N=10,000 x 4, per-service: converged within %g s" % PER_SERVICE_SECONDS_AT_10000))

    label = "steady-state resync of 10,000 services, batch extension: <= %g CPU-s" \
        % BATCH_RESYNC_CPU_SECONDS
    why = _unavailable(results, "batch")
    steady = _steady(results, "batch", 10000)
    per_service = _steady(results, "per-service", 10000)
    aside = ""
    if per_service and per_service["resync"]["cpu_per_full_resync"] is not None:
        aside = " (per-service: %s CPU-s)" % fmt(per_service["resync"]["cpu_per_full_resync"], 2)
    if why:
        verdicts.append(Verdict(label, None, "n/a: " + why + aside))
    elif steady is None or steady["resync"]["cpu_per_full_resync"] is None:
        verdicts.append(Verdict(label, None, "n/a: not measured at N=10,000"))
    else:
        cpu = steady["resync"]["cpu_per_full_resync"]
        verdicts.append(Verdict(label, cpu <= BATCH_RESYNC_CPU_SECONDS,
                                "%s CPU-s%s" % (fmt(cpu, 2), aside)))

    verdicts += _api_verdicts(results)
    verdicts.append(_one_compute_verdict(results))
    verdicts.append(_burst_verdict(results))
    verdicts += _placement_verdicts(results)
    verdicts += _etcd_verdicts(results)

    label = "memory: < %g MB RSS holding 10,000 services x 4 computes" % MEMORY_MB_AT_10000
    held = [r for r in results.get("steady_state", []) if r["services"] == 10000]
    if not held:
        verdicts.append(Verdict(label, None, "n/a: no steady-state run at N=10,000"))
    else:
        worst = max(held, key=lambda r: r["peak_rss_mb"])
        verdicts.append(Verdict(label, worst["peak_rss_mb"] < MEMORY_MB_AT_10000,
                                "peak %s MB, %s MB at the end (%s)" % (
                                    fmt(worst["peak_rss_mb"]), fmt(worst["rss_mb"]),
                                    worst["protocol"])))

    for protocol in ("per-service", "batch"):
        label = "time per pair flat (within %gx) from N=100 to N=10,000, %s" % (
            PER_PAIR_SPREAD, protocol)
        why = _unavailable(results, protocol)
        rows = [r for r in results.get("convergence", []) if r["protocol"] == protocol]
        sizes = {r["services"] for r in rows}
        if why:
            verdicts.append(Verdict(label, None, "n/a: " + why))
        elif not {100, 10000} <= sizes:
            verdicts.append(Verdict(label, None, "n/a: needs N=100 and N=10,000 in --sizes"))
        elif not all(r["converged"] for r in rows):
            verdicts.append(Verdict(label, False, "not every size converged"))
        else:
            per_pair = [r["ms_per_pair"] for r in rows]
            spread = max(per_pair) / min(per_pair)
            verdicts.append(Verdict(label, spread <= PER_PAIR_SPREAD, "%sx (%s)" % (
                fmt(spread, 2), ", ".join("N=%s: %s ms" % (fmt(r["services"]),
                                                          fmt(r["ms_per_pair"], 3))
                                         for r in sorted(rows, key=lambda r: r["services"])))))
    return verdicts


def _share(phase, ceiling):
    return phase["ok_per_second"] / ceiling["ok_per_second"] if ceiling["ok_per_second"] else 0.0


def _api_verdicts(results):
    api = results.get("api")
    labels = [
        "API: durable upscales >= %d%% of the no-work ceiling, p99 <= %g ms (%d clients)"
        % (UPSCALE_SHARE * 100, UPSCALE_P99_MS, results["settings"]["api_clients"]),
        "API: durable compute writes >= %d%% of the no-work ceiling" % (COMPUTE_WRITE_SHARE * 100),
        "API: GET /service/<name> >= %d%% of the no-work ceiling" % (GET_SHARE * 100)]
    if api is None:
        return [Verdict(label, None, "n/a: API benchmark skipped") for label in labels]
    ceiling = api["ceiling"]
    up, share = api["upscale"], _share(api["upscale"], ceiling["write"])
    verdicts = [Verdict(
        labels[0], share >= UPSCALE_SHARE and up["p99_ms"] is not None
        and up["p99_ms"] <= UPSCALE_P99_MS and api["totals_match"],
        "%d%% (%s/s of %s/s), p99 %s ms%s" % (
            round(share * 100), fmt(up["ok_per_second"], 0),
            fmt(ceiling["write"]["ok_per_second"], 0), fmt(up["p99_ms"]),
            "" if api["totals_match"] else "; stored total %s != %s upscales answered" % (
                fmt(api["stored_total"]), fmt(api["upscales_answered_2xx"]))))]
    for label, phase, against, target in (
            (labels[1], api["compute_writes"], ceiling["write"], COMPUTE_WRITE_SHARE),
            (labels[2], api["get"], ceiling["get"], GET_SHARE)):
        share = _share(phase, against)
        verdicts.append(Verdict(label, share >= target, "%d%% (%s/s of %s/s), p99 %s ms" % (
            round(share * 100), fmt(phase["ok_per_second"], 0),
            fmt(against["ok_per_second"], 0), fmt(phase["p99_ms"]))))
    return verdicts


def _etcd_verdicts(results):
    etcd, sqlite = results.get("etcd"), results.get("api")
    labels = [
        "etcd: upscales >= %d%% of the SQLite store's rate, p99 <= %g ms at that rate "
        "(one local member)" % (ETCD_UPSCALE_SHARE * 100, ETCD_UPSCALE_P99_MS),
        "etcd: upscales over TLS (client certificate) at most %d%% slower than without"
        % (ETCD_TLS_COST * 100)]
    if etcd is None or sqlite is None:
        return [Verdict(label, None, "n/a: etcd phase skipped") for label in labels]
    if "unavailable" in etcd:
        return [Verdict(label, None, "n/a: " + etcd["unavailable"]) for label in labels]
    plain, tls = etcd["plain"]["api"]["upscale"], etcd["tls"]["api"]["upscale"]
    paced = etcd["plain"]["api"].get("upscale_paced")
    base = sqlite["upscale"]["ok_per_second"]
    share = plain["ok_per_second"] / base if base else 0.0
    cost = 1.0 - tls["ok_per_second"] / plain["ok_per_second"] if plain["ok_per_second"] \
        else 1.0
    figure = "%d%% (%s/s of %s/s; p99 %s ms with %d clients sending when answered)" % (
        round(share * 100), fmt(plain["ok_per_second"], 0), fmt(base, 0),
        fmt(plain["p99_ms"]), plain["clients"])
    if paced is None:
        rate_met, figure = False, figure + "; not measured at that rate"
    else:
        # Answered (nearly) all that was due: a store that cannot keep up shows it here
        # as well as in its latency.
        kept_up = paced["ok_per_second"] >= 0.95 * paced["rate"]
        rate_met = kept_up and paced["p99_ms"] is not None \
            and paced["p99_ms"] <= ETCD_UPSCALE_P99_MS
        figure += "; due at %s/s: %s/s answered 2xx, p99 %s ms" % (
            fmt(paced["rate"], 0), fmt(paced["ok_per_second"], 0), fmt(paced["p99_ms"]))
        reference = sqlite.get("upscale_paced")
        if reference is not None:
            figure += " (SQLite at that rate: p99 %s ms)" % fmt(reference["p99_ms"])
        if paced.get("runs"):
            figure += "; medians of %d runs, due at that rate: %s" % (len(paced["runs"]),
                                                                     _runs(paced))
    return [
        Verdict(labels[0], share >= ETCD_UPSCALE_SHARE and rate_met, figure),
        Verdict(labels[1], cost <= ETCD_TLS_COST, "%d%% (%s/s against %s/s), p99 %s ms%s" % (
            round(cost * 100), fmt(tls["ok_per_second"], 0), fmt(plain["ok_per_second"], 0),
            fmt(tls["p99_ms"]), "; medians of runs: TLS %s; without %s" % (
                _runs(tls), _runs(plain)) if tls.get("runs") else ""))]


def _one_compute_verdict(results):
    one = results.get("one_compute")
    label = "N=%s x 1 compute, per-service: >= %gx faster than the sequential baseline" % (
        fmt(one["convergence"]["services"] if one else 1000), ONE_COMPUTE_SPEEDUP)
    if one is None:
        return Verdict(label, None, "n/a: one-compute phase skipped")
    row, base = one["convergence"], one["baseline"]
    if not row["converged"]:
        return Verdict(label, False, "genisys did not converge")
    speedup = base["seconds"] / row["seconds"]
    return Verdict(label, speedup >= ONE_COMPUTE_SPEEDUP, "%sx (genisys %s s, baseline %s s)"
                   % (fmt(speedup), fmt(row["seconds"], 2), fmt(base["seconds"])))


def _burst_verdict(results):
    burst = results.get("memory_burst")
    label = "memory: <= %g MB above idle after a burst of upscales, converged" % BURST_HELD_MB
    if burst is None:
        return Verdict(label, None, "n/a: memory phase skipped")
    figure = "%s MB (idle %s MB, %s MB after the burst, %s MB %s)" % (
        fmt(burst["held_mb"]), fmt(burst["idle_rss_mb"]), fmt(burst["after_burst_rss_mb"]),
        fmt(burst["settled_rss_mb"]), "once converged" if burst["converged"]
        else "NOT converged")
    return Verdict(label, burst["converged"] and burst["held_mb"] <= BURST_HELD_MB, figure)


def _placement_verdicts(results):
    placed = results.get("placement")
    n = fmt(PLACEMENT_SERVICES)
    labels = [
        "placement: decisions for %s placed services <= %g CPU-s in all (%g µs a service)"
        % (n, PLACEMENT_CPU_SECONDS, PLACEMENT_CPU_SECONDS * 1e6 / PLACEMENT_SERVICES),
        "placement: %s placed services x 4 (Spread over 8, batch) converged within %g s"
        % (n, BATCH_SECONDS_AT_10000),
        "placement: converged within %gx the same %s services given per compute (the "
        "counts the placed run chose, on the same computes, batch)"
        % (PLACEMENT_CONVERGENCE_RATIO, n)]
    if placed is None:
        return [Verdict(label, None, "n/a: placement phase skipped") for label in labels]
    if placed["services"] != PLACEMENT_SERVICES:
        return [Verdict(label, None, "n/a: %s services (--placement-services)"
                        % fmt(placed["services"])) for label in labels]
    first = placed["first_decisions"] or {}
    cpu = placed["placement_cpu_seconds"]
    verdicts = [Verdict(labels[0], placed["converged"] and cpu <= PLACEMENT_CPU_SECONDS,
                        "%s CPU-s until converged, %s decisions (%s µs each); first "
                        "decision of every service: %s CPU-s%s" % (
                            fmt(cpu, 3), fmt(placed["decisions"]),
                            fmt(placed["us_per_decision"], 1),
                            fmt(first.get("cpu_seconds_first_decisions"), 3),
                            "" if placed["converged"] else "; NOT converged"))]
    if not placed["converged"]:
        figure = "not converged after %s s (%s of %s services)" % (
            fmt(results["settings"]["timeout"], 0), fmt(placed["services_converged"]),
            fmt(placed["services"]))
        return verdicts + [Verdict(label, False, figure) for label in labels[1:]]
    seconds = placed["seconds"]
    verdicts.append(Verdict(labels[1], seconds <= BATCH_SECONDS_AT_10000,
                            "%s s" % fmt(seconds, 2)))
    twin = placed.get("per_compute_twin")
    if twin is None or not twin["converged"]:
        verdicts.append(Verdict(labels[2], False, "the per-compute twin %s (%s s placed)" % (
            "did not run" if twin is None else "did not converge", fmt(seconds, 2))))
    else:
        ratio = seconds / twin["seconds"]
        verdicts.append(Verdict(labels[2], ratio <= PLACEMENT_CONVERGENCE_RATIO,
                                "%sx (placed %s s, per compute %s s)" % (
                                    fmt(ratio, 2), fmt(seconds, 2), fmt(twin["seconds"], 2))))
    return verdicts


# -- the table ----------------------------------------------------------------------------


def _table(headers, rows, *, left=1):
    """Columns sized to fit; the first ``left`` columns left-aligned, numbers right."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        lines.append("  ".join(c.ljust(w) if i < left else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return lines


def render(results):
    s = results["settings"]
    m = results["machine"]
    out = ["genisys benchmark, %s" % results["started"],
           "machine: %d CPUs (%s), %s, Python %s; load average %s at start, %s at end" % (
               m["cpus"], m["cpu_model"], m["system"], m["python"], fmt(m["load_start"], 2),
               fmt(m.get("load_end"), 2)),
           "simulated connectors: one process each, %s ms per status or scale call; "
           "controller flags: %s" % (fmt(s["latency_ms"], 0),
                                     " ".join(s["controller_args"]) or "(defaults)"),
           ""]

    if results.get("convergence"):
        out.append("a/b. Convergence: N services x %d computes, every pair needs a change; "
                   "seconds from the controller's" % s["computes"])
        out.append("     start (every intent already in the store) to every pair Converged")
        rows = []
        for r in results["convergence"]:
            base = _baseline(results, r["services"])
            mark = "*" if base and base["extrapolated_from"] else ""
            ratio = speedup = "-"
            if base and r["converged"]:
                ratio = fmt(r["seconds"] / base["seconds"], 4)
                speedup = fmt(base["seconds"] / r["seconds"]) + "x"
            rows.append([r["protocol"], fmt(r["services"]), fmt(r["pairs"]),
                         fmt(r["seconds"], 2) if r["converged"] else "timeout",
                         fmt(r["startup_seconds"], 2), fmt(r["ms_per_pair"], 3),
                         fmt(r["requests_total"]), fmt(r["cpu_seconds"], 2),
                         fmt(r["peak_rss_mb"]), fmt(r.get("connectors_cpu_seconds"), 2),
                         (fmt(base["seconds"]) + mark) if base else "-",
                         (fmt(base["requests_total"]) + mark) if base else "-", ratio, speedup])
        out += ["  " + line for line in _table(
            ["protocol", "N", "pairs", "genisys s", "start-up s", "ms/pair", "requests",
             "CPU s", "peak RSS MB", "connectors CPU s", "baseline s", "requests",
             "genisys/baseline", "speed-up"], rows)]
        for name, why in results.get("protocols_skipped", {}).items():
            out.append("  %s: n/a: %s" % (name, why))
        extrapolated = [b for b in results.get("baseline", []) if b["extrapolated_from"]]
        for b in extrapolated:
            out.append("  * baseline for N=%s extrapolated from the measured N=%s (the "
                       "sequential loop is linear in pairs)" % (fmt(b["services"]),
                                                                fmt(b["extrapolated_from"])))
        out.append("  ms/pair = (genisys s - start-up s) / pairs; start-up = spawn to "
                   "\"listening\"; requests = status checks + scale orders the connectors "
                   "answered (a batch request counts its services);")
        out.append("  CPU s and peak RSS: the controller's; connectors CPU s: all %d simulated "
                   "connectors' together, on the same %d CPUs" % (s["computes"],
                                                                 results["machine"]["cpus"]))
        out += ["", "  Where the time went (the controller's own metrics, read once converged):"]
        rows = []
        for r in results["convergence"]:
            t, seconds = r["timings"], r["reconcile_seconds"]
            rows.append([r["protocol"], fmt(r["services"]), fmt(t["passes"]),
                         fmt(t["pass_ms_mean"], 1), fmt(t["calls"]), fmt(t["call_ms_mean"], 1),
                         fmt(t["call_seconds_total"] / seconds if seconds else None, 1),
                         fmt(r["cpu_seconds"] / seconds if seconds else None, 2)])
        out += ["  " + line for line in _table(
            ["protocol", "N", "passes", "ms/pass", "connector calls", "ms/call",
             "calls in flight (mean)", "controller CPU share"], rows)]
        out.append("  calls in flight = connector call seconds / (genisys s - start-up s); "
                   "CPU share = controller CPU s / the same")
        out.append("")

    if results.get("steady_state"):
        out.append("c. Steady state: everything already converged; a controller started on "
                   "it, poll interval %g s" % s["poll_interval"])
        rows = []
        for r in results["steady_state"]:
            for key, name in (("restart_pass", "restart pass (0 - 1 interval)"),
                              ("resync", "one resync (1 - 2 intervals)")):
                w = r[key]
                rows.append([r["protocol"], fmt(r["services"]), name, fmt(w["cpu_seconds"], 2),
                             fmt(w["requests"]["status"]), fmt(w["requests"]["scale"]),
                             "yes" if w["complete"] else "no",
                             fmt(w["cpu_per_full_resync"], 2)])
        out += ["  " + line for line in _table(
            ["protocol", "N", "window", "CPU s", "status checks", "scale orders",
             "all pairs checked", "CPU s per full resync"], rows, left=3)]
        out.append("  a window is one poll interval; when not every pair was checked in it, "
                   "CPU s per full resync scales the window's CPU to %s status checks"
                   % fmt(results["steady_state"][0]["pairs"]))
        for r in results["steady_state"]:
            if r["pairs_converged"] != r["pairs"]:
                out.append("  WARNING: %s: only %s of %s pairs still Converged at the end" % (
                    r["protocol"], fmt(r["pairs_converged"]), fmt(r["pairs"])))
        out.append("")

    api = results.get("api")
    if api:
        out.append("d. API: %d keep-alive clients in their own process, %s; %g s measured "
                   "after %g s of warm-up" % (api["clients"], api["store"], s["api_duration"],
                                              s["api_warmup"]))
        rows = []
        ceiling = api.get("ceiling")
        phases = [("POST /service/<name>/upscale", api["upscale"], ceiling and ceiling["write"]),
                  ("GET  /service/<name>", api["get"], ceiling and ceiling["get"])]
        if api.get("health"):
            phases.append(("GET  /healthz (genisys' floor)", api["health"],
                           ceiling and ceiling["get"]))
        if "compute_writes" in api:
            phases.append(("PUT  /compute/c1", api["compute_writes"],
                           ceiling and ceiling["write"]))
        if ceiling:
            phases += [("no-work ceiling: GET", ceiling["get"], None),
                       ("no-work ceiling: PUT", ceiling["write"], None)]
        for name, r, against in phases:
            errors = sum(n for code, n in r["codes"].items() if not code.startswith("2"))
            rows.append([name, fmt(r["ok_per_second"], 0),
                         "%d%%" % round(100 * _share(r, against)) if against else "-",
                         fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), fmt(r["max_ms"], 1),
                         fmt(errors), fmt(sum(r["transport_errors"].values())),
                         fmt(r.get("controller_cpu_ms_per_request"), 3),
                         "%d%%" % round(100 * r["loadgen_cpu_share"])])
        out += ["  " + line for line in _table(
            ["request", "2xx/s", "of ceiling", "p50 ms", "p99 ms", "max ms", "non-2xx",
             "conn. errors", "controller CPU ms/request", "load generator CPU"], rows)]
        if ceiling:
            out.append("  ceiling: %s, the same requests from the same load generator"
                       % ceiling["server"])
        out.append("  stored total of replicas %s %s upscales answered 2xx (%s)" % (
            fmt(api["stored_total"]), "=" if api["totals_match"] else "!=",
            fmt(api["upscales_answered_2xx"])))
        out.append("  " + _caught_up(api["upscale"]))
        if api["upscale"].get("runs"):
            out.append("  upscales: the median of %d runs, one after another (each "
                       "converged before the next): %s" % (len(api["upscale"]["runs"]),
                                                           _runs(api["upscale"])))
        out.append("")

    held = results.get("steady_state", [])
    if held:
        out.append("e. Memory: controller holding N services x %d computes (steady-state run)"
                   % s["computes"])
        for r in held:
            out.append("  %s, N=%s: RSS %s MB at the end, peak %s MB" % (
                r["protocol"], fmt(r["services"]), fmt(r["rss_mb"]), fmt(r["peak_rss_mb"])))
        out.append("")

    one = results.get("one_compute")
    if one:
        row, base = one["convergence"], one["baseline"]
        out.append("f. One compute: %s services x 1 compute, per-service protocol" %
                   fmt(row["services"]))
        out += ["  " + line for line in _table(
            ["", "seconds", "start-up s", "requests", "CPU s", "calls in flight (mean)"],
            [["genisys", fmt(row["seconds"], 2) if row["converged"] else "timeout",
              fmt(row["startup_seconds"], 2), fmt(row["requests_total"]),
              fmt(row["cpu_seconds"], 2),
              fmt(row["timings"]["call_seconds_total"] / row["reconcile_seconds"]
                  if row["reconcile_seconds"] else None, 1)],
             ["sequential baseline", fmt(base["seconds"], 1), "-",
              fmt(base["requests_total"]), "-", "1"]])]
        out.append("")

    burst = results.get("memory_burst")
    if burst:
        out.append("g. Memory after a burst: %d clients upscale %d services for %g s (%s "
                   "upscales, %s/s), then the reconciler converges them"
                   % (burst["clients"], burst["services"], burst["seconds"],
                      fmt(burst["upscales_ok"]), fmt(burst["upscales_per_second"], 0)))
        out.append("  RSS: idle %s MB; right after the burst %s MB; %s, 5 s later, %s MB "
                   "(peak %s MB): %s MB held" % (
                       fmt(burst["idle_rss_mb"]), fmt(burst["after_burst_rss_mb"]),
                       "converged %.1f s after the burst" % burst["converge_seconds_after_burst"]
                       if burst["converged"] else "NOT converged",
                       fmt(burst["settled_rss_mb"]), fmt(burst["peak_rss_mb"]),
                       fmt(burst["held_mb"])))
        out.append("")

    placed = results.get("placement")
    if placed:
        first = placed["first_decisions"] or {}
        out.append("h. Placement: %s services, each a total of %d %s over %d computes (%s "
                   "protocol): %s resources, seconds from the controller's" % (
                       fmt(placed["services"]), placed["total"], placed["strategy"],
                       placed["computes"], placed["protocol"], fmt(placed["resources"])))
        out.append("   start to every service's assignment Converged; poll interval %g s in "
                   "both runs (no resync in either)" % placed.get("poll_interval", 15.0))
        out += ["  " + line for line in _table(
            ["", "seconds", "start-up s", "placement CPU s", "decisions", "µs/decision",
             "requests", "CPU s", "peak RSS MB", "connectors CPU s"],
            [["converged" if placed["converged"] else "NOT converged",
              fmt(placed["seconds"], 2), fmt(placed["startup_seconds"], 2),
              fmt(placed["placement_cpu_seconds"], 3), fmt(placed["decisions"]),
              fmt(placed["us_per_decision"], 1), fmt(placed["requests_total"]),
              fmt(placed["cpu_seconds"], 2), fmt(placed["peak_rss_mb"]),
              fmt(placed["connectors_cpu_seconds"], 2)],
             ["every service assigned", fmt(first.get("seconds"), 2), "-",
              fmt(first.get("cpu_seconds"), 3), fmt(first.get("decisions")),
              fmt(first["cpu_seconds"] * 1e6 / first["decisions"]
                  if first.get("decisions") else None, 1), "-", "-", "-", "-"]]
            + [[("per compute, same counts" if twin["converged"]
                 else "per compute: NOT converged"), fmt(twin["seconds"], 2),
                fmt(twin["startup_seconds"], 2), "-", "-", "-", fmt(twin["requests_total"]),
                fmt(twin["cpu_seconds"], 2), fmt(twin["peak_rss_mb"]),
                fmt(twin["connectors_cpu_seconds"], 2)]
               for twin in [placed.get("per_compute_twin")] if twin])]
        out.append("  per compute, same counts: the same services given the counts the placed "
                   "run converged to, as per-compute maps, on as many fresh computes")
        out.append("  first decision of every service: %s CPU-s (the counters when every "
                   "service had an assignment, x %s / the decisions counted by then)" % (
                       fmt(first.get("cpu_seconds_first_decisions"), 3),
                       fmt(placed["services"])))
        out.append("  resources assigned per compute: %s" % (", ".join(
            "%s %s" % (c, fmt(n)) for c, n in placed["assigned_per_compute"].items())
            or "none"))
        t = placed["timings"]
        out.append("  passes %s (%s ms each), connector calls %s (%s ms each); placement "
                   "CPU: genisys_placement_cpu_seconds_total, decisions: "
                   "genisys_placements_total" % (fmt(t["passes"]), fmt(t["pass_ms_mean"], 1),
                                                 fmt(t["calls"]), fmt(t["call_ms_mean"], 1)))
        out.append("")

    etcd = results.get("etcd")
    if etcd and "unavailable" not in etcd:
        out.append("i. etcd: the API (as in d.) and a convergence run on one local etcd "
                   "member, beside the SQLite store of d. and a.")
        rows = []
        sqlite = results.get("api")
        stores = ([("sqlite", sqlite)] if sqlite else []) + [
            ("etcd", etcd["plain"]["api"]), ("etcd + TLS", etcd["tls"]["api"])]
        for name, api in stores:
            paced = api.get("upscale_paced")
            for request, key in (("upscale", "upscale"), ("GET", "get"),
                                 ("PUT /compute/c1", "compute_writes"),
                                 ("upscale due at %s/s" % fmt(paced and paced["rate"], 0),
                                  "upscale_paced")):
                r = api.get(key)
                if r is None:
                    continue
                caught_up = "-"
                if key in ("upscale", "upscale_paced") and "converged_after_seconds" in r:
                    caught_up = fmt(r["converged_after_seconds"], 2) \
                        if r["converged_after_seconds"] is not None else "NO"
                rows.append([name, request, fmt(r["ok_per_second"], 0), fmt(r["p50_ms"], 2),
                             fmt(r["p99_ms"], 2),
                             fmt(r.get("controller_cpu_ms_per_request"), 3),
                             fmt(r.get("store_cpu_ms_per_request"), 3), caught_up])
        out += ["  " + line for line in _table(
            ["store", "request", "2xx/s", "p50 ms", "p99 ms", "controller CPU ms/request",
             "etcd CPU ms/request", "converged after s"], rows, left=2)]
        out.append("  converged after: seconds from the last upscale until every service "
                   "converged (the next phase began then)")
        for name, api in stores:
            for label, key in (("upscales", "upscale"), ("due at a rate", "upscale_paced")):
                if api.get(key) and api[key].get("runs"):
                    out.append("  %s, %s, the median of: %s" % (name, label, _runs(api[key])))
        rows = []
        for name in ("plain", "tls"):
            c = etcd[name]["convergence"]
            same = _convergence(results, c["protocol"], c["services"])
            if name == "plain" and same:
                rows.append(["sqlite", fmt(same["seconds"], 2), fmt(same["startup_seconds"], 2),
                             fmt(same["requests_total"]), fmt(same["cpu_seconds"], 2)])
            rows.append(["etcd" if name == "plain" else "etcd + TLS",
                         fmt(c["seconds"], 2) if c["converged"] else "timeout",
                         fmt(c["startup_seconds"], 2), fmt(c["requests_total"]),
                         fmt(c["cpu_seconds"], 2)])
        c = etcd["plain"]["convergence"]
        out.append("  convergence, %s services x %d computes, %s protocol:" % (
            fmt(c["services"]), c["computes"], c["protocol"]))
        out += ["  " + line for line in _table(
            ["store", "seconds", "start-up s", "requests", "controller CPU s"], rows)]
        out.append("  " + "; ".join("%s: %s" % (name, etcd[key]["store"])
                                    for name, key in (("etcd", "plain"), ("TLS", "tls"))))
        out.append("")

    faults = results.get("faults")
    if faults:
        out.append("WARNING: processes of the run logged faults (ERROR, CRITICAL or a "
                   "traceback); their logs are kept with --keep-temp:")
        for name, fault in sorted(faults.items()):
            out.append("  %s: %s lines, the first: %s" % (name, fmt(fault["lines"]),
                                                           fault["first"][:160]))
        out.append("")
    elif faults is not None:
        out.append("Faults logged: none (no ERROR, CRITICAL or traceback in any process's "
                   "log)")
        out.append("")
    out.append("Targets (issues 7, 18 and 21, and placement)")
    for v in results["targets"]:
        state = {True: "met    ", False: "NOT MET", None: "n/a    "}[v["met"]]
        out.append("  %s  %s: %s" % (state, v["target"], v["figure"]))
    return "\n".join(out)
