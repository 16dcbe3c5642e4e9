"""The in-process backends' WatchHub: its replay history is short, and bounded."""

import pytest

from genisys.store import Compacted
from genisys.store.base import Event, Record, WatchHub


def put(key, revision):
    return Event("put", key, revision, Record(key, {"n": revision}, revision))


async def drained(watch, count):
    return [(await watch.__anext__()).revision for _ in range(count)]


@pytest.mark.gen_test
async def test_the_history_replays_the_last_thousand_events_and_no_further():
    hub = WatchHub(0)
    hub.publish(put("k/%d" % (i % 7), i) for i in range(1, 1501))
    watch = hub.subscribe("k/", start_revision=500)  # 1,000 events back: all kept
    assert await drained(watch, 1000) == list(range(501, 1501))
    watch.close()
    watch = hub.subscribe("k/", start_revision=499)  # one more: forgotten
    with pytest.raises(Compacted):
        await watch.__anext__()
    watch.close()
    watch = hub.subscribe("k/", start_revision=1500)  # from now on: what comes next
    hub.publish([put("k/0", 1501), put("other/x", 1502), put("k/1", 1503)])
    assert await drained(watch, 2) == [1501, 1503]
    hub.close()
