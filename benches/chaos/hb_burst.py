"""A heartbeat burst from a publisher that is not edgeplane (nats-py, the documented wire format):
ROUNDS heartbeats for each of INSTANCES instances of cluster `api`, sequence numbers 1..ROUNDS per
instance (boot id BOOT_ID, default "burst": use a new one to repeat a run on the same node), published
as fast as one connection goes, or at RATE heartbeats a second (paced every 10 ms); prints the rate
achieved. Read the node's /metrics afterwards (edgeplane_heartbeats_total by result,
edgeplane_bus_slow_consumer_total, edgeplane_heartbeats_missed_total) to see what it took in.

usage: hb_burst.py NATS_URL INSTANCES ROUNDS [RATE [BOOT_ID]]
"""
import asyncio
import json
import sys
import time

import nats


async def main(url: str, instances: int, rounds: int, rate: float, boot_id: str) -> None:
    nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
    messages = [
        [
            (f"edge.v1.hb.api.i-{i}", json.dumps({
                "schema": 1, "instance": f"i-{i}", "boot_id": boot_id, "seq": seq,
                "address": f"127.0.0.1:{20000 + i}", "health": 100, "ttl_ms": 600000,
            }).encode())
            for i in range(instances)
        ]
        for seq in range(1, rounds + 1)
    ]
    start = time.monotonic()
    sent = 0
    for batch in messages:
        for subject, payload in batch:
            if rate and sent % 1000 == 0:
                # Paced: never ahead of the rate by more than 10 ms of heartbeats.
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0.01:
                    await nc.flush()
                    await asyncio.sleep(ahead)
            await nc.publish(subject, payload)
            sent += 1
    await nc.flush()
    elapsed = time.monotonic() - start
    total = instances * rounds
    print(f"published {total} heartbeats in {elapsed:.2f} s: {total / elapsed:,.0f}/s")
    await nc.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    rate = float(args[3]) if len(args) > 3 else 0.0
    boot_id = args[4] if len(args) > 4 else "burst"
    asyncio.run(main(args[0], int(args[1]), int(args[2]), rate, boot_id))
