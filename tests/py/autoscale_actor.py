"""An example autoscale actor (nats-py, docs/bus.md): follows the fleet's recommendations for one
cluster on `edge.v1.autoscale.<cluster>` and starts or stops local backend processes
(scaled_backend.py) to match `desired`; they join the cluster by heartbeat. Prints one line per
recommendation acted on: `desired=N running=M`. Exits when its standard input closes, stopping its
backends.

usage: autoscale_actor.py NATS_URL CLUSTER DELAY_MS
"""
import asyncio
import json
import os
import signal
import sys

import nats

HERE = os.path.dirname(os.path.abspath(__file__))


async def main(url, cluster, delay_ms):
    nc = await nats.connect(url)
    running = {}  # instance number -> process
    started = [0]

    async def start():
        started[0] += 1
        proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(HERE, "scaled_backend.py"),
            url, cluster, f"inst-{started[0]}", str(delay_ms))
        running[started[0]] = proc

    async def stop_one():
        newest = max(running)
        proc = running.pop(newest)
        proc.send_signal(signal.SIGTERM)
        await proc.wait()

    async def on_recommendation(msg):
        rec = json.loads(msg.data)
        desired = int(rec["desired"])
        while len(running) < desired:
            await start()
        while len(running) > desired:
            await stop_one()
        print(f"desired={desired} running={len(running)}", flush=True)

    await nc.subscribe(f"edge.v1.autoscale.{cluster}", cb=on_recommendation)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await nc.drain()
    while running:
        await stop_one()


if __name__ == "__main__":
    a = sys.argv
    asyncio.run(main(a[1], a[2], int(a[3])))
