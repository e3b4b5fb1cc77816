"""A fleet-event subscriber that is not edgeplane: nats-py and docs/bus.md only. Subscribes to
`edge.v1.event.>`, prints `ready` once the subscription is in place, then one line per event:
`<subject> <payload>`. Exits when its standard input closes.

usage: events_sub.py NATS_URL
"""
import asyncio
import sys

import nats


async def main(url: str) -> None:
    nc = await nats.connect(url)

    async def show(msg):
        print(msg.subject, msg.data.decode(), flush=True)

    await nc.subscribe("edge.v1.event.>", cb=show)
    await nc.flush()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
