"""A heartbeat burst from a publisher that is not edgeplane (nats-py, the documented wire format):
ROUNDS heartbeats for each of INSTANCES instances of cluster `api`, published as fast as one
connection goes, sequence numbers 1..ROUNDS per instance; prints the rate achieved. Read the node's
/metrics afterwards (edgeplane_heartbeats_total by result, edgeplane_bus_slow_consumer_total,
edgeplane_heartbeats_missed_total) to see what it took in.

usage: hb_burst.py NATS_URL INSTANCES ROUNDS
"""
import asyncio
import json
import sys
import time

import nats


async def main(url: str, instances: int, rounds: int) -> None:
    nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
    messages = [
        [
            (f"edge.v1.hb.api.i-{i}", json.dumps({
                "schema": 1, "instance": f"i-{i}", "boot_id": "burst", "seq": seq,
                "address": f"127.0.0.1:{20000 + i}", "health": 100, "ttl_ms": 600000,
            }).encode())
            for i in range(instances)
        ]
        for seq in range(1, rounds + 1)
    ]
    start = time.monotonic()
    for batch in messages:
        for subject, payload in batch:
            await nc.publish(subject, payload)
    await nc.flush()
    elapsed = time.monotonic() - start
    total = instances * rounds
    print(f"published {total} heartbeats in {elapsed:.2f} s: {total / elapsed:,.0f}/s")
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
