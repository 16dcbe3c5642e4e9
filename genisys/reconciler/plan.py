"""The plan: what the controller would do now, one line per (service, compute).

``GET /plan``, ``genisys plan`` and every dry run (``?dryRun=true``) show it. It is
worked out from the store alone, by the same functions the reconciler decides
with: a placed service's assignment is ``genisys.placement.assign`` over its last
status (with the capacity its connectors last reported), and each pair goes from
what its connector last reported running to what it should run. So a plan needs
no connector call, and says what the next passes will order.

Each line: the action (create, scale up, scale down, delete, none), from -> to,
and the reason: ``intent`` (the spec asks for a new count there), ``placement``
(genisys placed a new total), ``rebalance`` (a rebalance moves it), ``drift``
(the intent did not move, but what runs did), ``paced`` (the next step toward the
intent of a service whose behavior paces it: docs/scaling.md).
"""

import time
from collections.abc import Mapping
from typing import Any, Optional

from genisys import pacing, placement
from genisys.intents import COMPUTES, SERVICES, STATUS
from genisys.model import Service
from genisys.store import Store

CREATE, SCALE_UP, SCALE_DOWN, DELETE, NONE = "create", "scale up", "scale down", "delete", "none"
ACTIONS = (CREATE, SCALE_UP, SCALE_DOWN, DELETE, NONE)
REASONS = ("intent", "placement", "rebalance", "drift", "paced", "")


async def make_plan(store: Store, *, since: Optional[int] = None,
                    now: Optional[float] = None) -> dict:
    """The plan of everything in ``store``: ``{"revision", "changes", "lines"}``, and
    with ``since`` (a revision), ``moved``: the services and computes written after it.
    ``now`` (seconds since the epoch; None: now) is when paced services take their
    next step."""
    now = time.time() if now is None else now
    specs = await store.list(SERVICES)
    statuses = {r.key[len(STATUS):]: r.value for r in (await store.list(STATUS)).records}
    computes = await store.list(COMPUTES)
    labels = {r.value["name"]: r.value.get("labels", {}) for r in computes.records}
    lines = []
    for record in specs.records:
        service = Service.from_store(record.value)
        lines += service_lines(service, statuses.get(service.name, {}), labels, now=now)
    plan: dict[str, Any] = {
        "revision": max(specs.revision, computes.revision),
        "changes": sum(1 for line in lines if line["action"] != NONE), "lines": lines}
    if since is not None:
        plan["moved"] = [{"kind": kind, "name": r.value["name"], "resourceVersion": r.version}
                         for kind, listing in (("Compute", computes), ("Service", specs))
                         for r in listing.records if r.version > since]
    return plan


def service_lines(service: Service, status: Mapping[str, Any],
                  computes: Mapping[str, Mapping[str, str]], *, now: float) -> list[dict]:
    """The lines of one service, by compute: those it should run on, and those its
    status still has an entry for (they go to 0). A paced service's are its next step
    (as the reconciler takes it at ``now``)."""
    paced = pacing.pace_service(service, status, now=now)
    service = paced.service
    entries = status.get("computes", {})
    before = status.get("placement") or {}
    if service.placed:
        counts = placement.assign(service, status, computes=computes)["assignment"]
    else:
        counts = service.replicas
    desired = {c: 0 if service.deleting else n for c, n in counts.items()}
    desired.update({c: 0 for c in entries if c not in desired})
    rebalancing = service.placed and service.rebalance > before.get("rebalanced", 0)
    lines = []
    for compute in sorted(desired):
        entry = entries.get(compute)
        running = entry.get("running") if entry else None
        to = desired[compute]
        action = _action(entry, running, to, gone=service.deleting or compute not in counts)
        reason = ""
        if action != NONE:
            step, intent = paced.steps.get(None if service.placed else compute, (0, 0))
            if step != intent:
                reason = "paced"
            elif entry is not None and entry.get("desired") == to:
                reason = "drift"
            elif service.placed and not service.deleting \
                    and before.get("assignment", {}).get(compute, 0) != to:
                reason = "rebalance" if rebalancing else "placement"
            else:
                reason = "intent"
        lines.append({"service": service.name, "compute": compute, "action": action,
                      "from": running, "to": to, "reason": reason})
    return lines


def _action(entry: Optional[Mapping[str, Any]], running: Optional[int], to: int, *,
            gone: bool) -> str:
    """``entry``: the pair's status entry (None: genisys never ran it there)."""
    if running == to:
        return NONE
    if to == 0:
        return DELETE if gone else SCALE_DOWN
    if entry is None:
        return CREATE
    return SCALE_UP if running is None or to > running else SCALE_DOWN


def changed_lines(before: dict, after: dict) -> list[dict]:
    """The lines of ``after`` that are new or differ from ``before``'s, and those of
    ``before`` that are gone (as "none": nothing left to do there)."""
    old = {(line["service"], line["compute"]): line for line in before["lines"]}
    new = {(line["service"], line["compute"]): line for line in after["lines"]}
    changed = [line for key, line in new.items() if old.get(key) != line]
    changed += [dict(line, action=NONE, to=line["from"] or 0, reason="")
                for key, line in old.items() if key not in new]
    return sorted(changed, key=lambda line: (line["service"], line["compute"]))
