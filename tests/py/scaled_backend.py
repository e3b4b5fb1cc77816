"""A backend instance that joins its cluster by heartbeat (nats-py, docs/bus.md): serves HTTP on a
free loopback port, each request taking DELAY_MS, and heartbeats every 200 ms with the requests it has in
flight (the peak since the last heartbeat). On SIGTERM it sends a draining heartbeat and exits.

usage: scaled_backend.py NATS_URL CLUSTER INSTANCE DELAY_MS
"""
import asyncio
import json
import signal
import sys
import uuid

import nats


async def main(url, cluster, instance, delay):
    nc = await nats.connect(url)
    subject = f"edge.v1.hb.{cluster}.{instance}"
    boot, seq = uuid.uuid4().hex, 0
    state = {"in_flight": 0, "peak": 0}

    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                state["in_flight"] += 1
                state["peak"] = max(state["peak"], state["in_flight"])
                await asyncio.sleep(delay)
                state["in_flight"] -= 1
                body = instance.encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    def beat(draining):
        peak, state["peak"] = state["peak"], state["in_flight"]
        return json.dumps({
            "schema": 1, "instance": instance, "boot_id": boot, "seq": seq,
            "address": f"127.0.0.1:{port}", "health": 100, "in_flight": peak,
            "cpu": 0.1, "latency_ms": delay * 1000, "ttl_ms": 1000, "draining": draining,
        }).encode()

    while not stop.is_set():
        seq += 1
        await nc.publish(subject, beat(False))
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
    seq += 1
    await nc.publish(subject, beat(True))
    await nc.flush()
    server.close()
    await nc.close()


if __name__ == "__main__":
    a = sys.argv
    asyncio.run(main(a[1], a[2], a[3], int(a[4]) / 1000))
