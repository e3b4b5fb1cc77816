"""A backend's heartbeat publisher that is not edgeplane: nats-py and the wire format documented in
docs/bus.md only. Beats every 100 ms for DURATION seconds, then leaves with a draining heartbeat.

usage: heartbeat.py NATS_URL CLUSTER INSTANCE ADDRESS DURATION
"""
import asyncio
import json
import sys
import uuid

import nats


async def main(url: str, cluster: str, instance: str, address: str, duration: float) -> None:
    nc = await nats.connect(url)
    subject = f"edge.v1.hb.{cluster}.{instance}"
    boot = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    seq = 0

    def beat(draining: bool) -> bytes:
        return json.dumps({
            "schema": 1,
            "instance": instance,
            "boot_id": boot,
            "seq": seq,
            "address": address,
            "weight": 1,
            "health": 100,
            "in_flight": 0,
            "cpu": 0.1,
            "latency_ms": 1.0,
            "ttl_ms": 1000,
            "draining": draining,
        }).encode()

    while loop.time() < end:
        seq += 1
        await nc.publish(subject, beat(False), headers={"Content-Type": "application/json"})
        await asyncio.sleep(0.1)
    seq += 1
    await nc.publish(subject, beat(True), headers={"Content-Type": "application/json"})
    await nc.flush()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
