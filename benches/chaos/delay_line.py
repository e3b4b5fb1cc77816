"""A TCP delay line: accepts on LISTEN (host:port), connects each client to UPSTREAM (host:port) and
forwards every chunk in both directions DELAY_MS after it arrived, in order, without limiting
throughput. It stands in for `tc netem delay` on kernels built without sch_netem: latency added at
the application's stream, where NATS pings, requests and deliveries feel it (TCP's own handshake and
acks are not delayed). Standard library only.

usage: delay_line.py LISTEN UPSTREAM DELAY_MS
"""
import asyncio
import sys
import time


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forwards reader to writer, each chunk `delay` seconds after it was read."""
    queue: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((time.monotonic() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            queue.put_nowait((time.monotonic() + delay, b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()
        writer.close()


async def main(listen: str, upstream: str, delay_ms: float) -> None:
    delay = delay_ms / 1000.0
    up_host, up_port = split(upstream)

    async def serve(client_reader, client_writer) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(up_host, up_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            carry(client_reader, server_writer, delay),
            carry(server_reader, client_writer, delay),
            return_exceptions=True,
        )

    host, port = split(listen)
    server = await asyncio.start_server(serve, host, port)
    print(f"delay line {listen} -> {upstream}, {delay_ms:g} ms each way", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
