#!/usr/bin/env python3
"""Holds many connections for benches/load/conn-memory.sh.

  conn_hold.py clients PORT N idle      N keep-alive connections, one request answered on each
  conn_hold.py clients PORT N idle-tls  the same over TLS (ALPN http/1.1, the certificate not checked)
  conn_hold.py clients PORT N inflight  N connections, each with one request sent and unanswered
  conn_hold.py backend PORT             an HTTP server that reads requests and never answers

`clients` prints "ready N" once all N are in that state, then holds them until stdin closes;
`backend` prints "listening" and holds every connection it accepts until killed.
"""
import asyncio
import ssl
import sys

REQUEST = b"GET /2b HTTP/1.1\r\nHost: bench\r\nUser-Agent: conn-hold\r\n\r\n"


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def one(port, mode, held, tls):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    writer.write(REQUEST)
    await writer.drain()
    if mode in ("idle", "idle-tls"):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"answer: {head[:40]!r}")
        await reader.readexactly(length)
    held.append((reader, writer))


async def clients(port, n, mode):
    held = []
    sem = asyncio.Semaphore(256)  # connects at once, so the listen backlog never overflows
    tls = tls_context() if mode == "idle-tls" else None

    async def limited():
        async with sem:
            await one(port, mode, held, tls)

    await asyncio.gather(*(limited() for _ in range(n)))
    print(f"ready {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def backend(port):
    held = []

    async def hold(reader, writer):
        held.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(hold, "127.0.0.1", port, backlog=4096)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


def main():
    if sys.argv[1] == "clients":
        asyncio.run(clients(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
    elif sys.argv[1] == "backend":
        asyncio.run(backend(int(sys.argv[2])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
