"""A publisher that is not edgeplane: pushes a routing document with nats-py, using only the wire
format documented in docs/bus.md, and collects the nodes' acknowledgements.

usage: push_config.py NATS_URL DOCUMENT_FILE EXPECTED_ACKS
prints one JSON line: {"revision": N, "acks": [...]}
"""
import asyncio
import json
import sys

import nats


async def main(url: str, path: str, expected: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    kv = await js.key_value("edge_config")
    acks = await nc.subscribe("edge.v1.ack.*")
    await nc.flush()
    with open(path, "rb") as f:
        revision = await kv.put("current", f.read())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    got = []
    while len(got) < expected:
        msg = await acks.next_msg(timeout=max(0.1, deadline - loop.time()))
        ack = json.loads(msg.data)
        if ack["revision"] == revision:
            got.append(ack)
    print(json.dumps({"revision": revision, "acks": got}))
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
