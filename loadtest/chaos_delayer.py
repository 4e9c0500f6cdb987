#!/usr/bin/env python3
"""Userspace packet delayer for loadtest/chaos (this kernel has no tc netem).

    chaos_delayer.py --queue N --delays '{"1-2": 20.0, ...}' --stats FILE

Runs inside the hub namespace, where iptables sends forwarded region-to-region
packets to NFQUEUE N (with --queue-bypass, so nothing is lost while this process
is not bound). Each packet is held for the one-way delay of its (source subnet,
destination subnet) pair, keyed by the third octet of its IPv4 addresses
("1-2" = 10.77.1.x -> 10.77.2.x, in ms), then accepted. One thread, one heap: a
select() on the netlink socket with a timeout to the next packet due, so packets
of one pair leave in the order they came. Only the first 40 bytes of each packet
are copied to userspace (the verdict applies to the kernel's full packet).

On SIGTERM/SIGINT it releases every held packet, unbinds and writes its stats
(packets per pair, how late packets left compared to when they were due) as JSON.
Needs PyPI NetfilterQueue (loadtest/chaos installs it into .venv-chaos).
"""

import argparse
import gc
import heapq
import json
import os
import select
import signal
import time

from netfilterqueue import COPY_PACKET, NetfilterQueue


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--delays", required=True, help="JSON: {\"S-D\": one-way ms}")
    ap.add_argument("--stats", required=True)
    ap.add_argument("--no-rt", action="store_true", help="stay in the normal scheduling class")
    args = ap.parse_args()
    # Released packets are late by however long this process waits for a core. A
    # real-time priority puts it ahead of the meridians and origins it shares the
    # machine with; it blocks in select() between packets, so it takes little CPU
    # (and the kernel's RT throttling caps it anyway). No cycles are made below,
    # so the cyclic GC (whose pauses would delay packets) is off.
    sched = "normal"
    if not args.no_rt:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            sched = "SCHED_FIFO 10"
        except OSError as e:
            sched = f"normal (SCHED_FIFO refused: {e})"
    gc.disable()
    delays = {}
    for k, ms in json.loads(args.delays).items():
        s, d = (int(x) for x in k.split("-"))
        delays[(s, d)] = ms / 1000.0

    heap = []
    seq = 0
    counts = {}
    unknown = 0
    late = []  # ms a packet left after it was due (sampled: every packet)
    held_max = 0

    def on_packet(pkt):
        nonlocal seq, unknown, held_max
        p = pkt.get_payload()
        now = time.monotonic()
        if len(p) < 20 or p[0] >> 4 != 4:
            pkt.accept()
            return
        key = (p[14], p[18])
        d = delays.get(key)
        if d is None:
            unknown += 1
            pkt.accept()
            return
        counts[key] = counts.get(key, 0) + 1
        seq += 1
        heapq.heappush(heap, (now + d, seq, pkt))
        held_max = max(held_max, len(heap))

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    nfq = NetfilterQueue()
    nfq.bind(args.queue, on_packet, max_len=16384, mode=COPY_PACKET, range=40)
    fd = nfq.get_fd()
    started = time.time()
    try:
        while not stop:
            timeout = max(0.0, heap[0][0] - time.monotonic()) if heap else 0.2
            try:
                ready, _, _ = select.select([fd], [], [], min(timeout, 0.2))
            except InterruptedError:
                continue
            if ready:
                nfq.run(block=False)
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                due, _, pkt = heapq.heappop(heap)
                pkt.accept()
                late.append((now - due) * 1000.0)
    finally:
        while heap:
            heapq.heappop(heap)[2].accept()
        nfq.unbind()
        late.sort()

        def pct(q):
            return round(late[min(len(late) - 1, int(q * len(late)))], 3) if late else None

        stats = {
            "started_unix": started,
            "scheduling": sched,
            "packets": sum(counts.values()),
            "per_pair": {f"{s}-{d}": n for (s, d), n in sorted(counts.items())},
            "unmatched": unknown,
            "held_max": held_max,
            "late_ms": {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999),
                        "max": round(late[-1], 3) if late else None},
        }
        with open(args.stats, "w") as f:
            json.dump(stats, f, indent=1)


if __name__ == "__main__":
    main()
