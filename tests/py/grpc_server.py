"""A gRPC server (grpcio) for the end-to-end tests, without generated code: service `edge.Echo`
with raw-bytes messages. Prints its port, then serves until killed.

  Say   (unary)             "echo:" + request; "not-found" aborts NOT_FOUND; "unavailable-once:<k>"
                            aborts UNAVAILABLE (trailers-only) the first time for each k
  Count (server streaming)  request "N": N messages "0".."N-1"
  Sum   (client streaming)  the total length of the messages, as text
  Chat  (bidi streaming)    each message back, prefixed "re:"
Every call's trailing metadata holds x-served-by: grpc-server.
"""

import sys
import threading
from concurrent import futures

import grpc

SEEN = set()
LOCK = threading.Lock()
TRAILER = (("x-served-by", "grpc-server"),)


def say(request, context):
    context.set_trailing_metadata(TRAILER)
    if request == b"not-found":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    if request.startswith(b"unavailable-once:"):
        with LOCK:
            first = request not in SEEN
            SEEN.add(request)
        if first:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
    return b"echo:" + request


def count(request, context):
    context.set_trailing_metadata(TRAILER)
    for i in range(int(request)):
        yield str(i).encode()


def total(requests, context):
    context.set_trailing_metadata(TRAILER)
    return str(sum(len(r) for r in requests)).encode()


def chat(requests, context):
    context.set_trailing_metadata(TRAILER)
    for r in requests:
        yield b"re:" + r


def main():
    ident = lambda b: b  # noqa: E731 - raw bytes in and out
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(say, ident, ident),
        "Count": grpc.unary_stream_rpc_method_handler(count, ident, ident),
        "Sum": grpc.stream_unary_rpc_method_handler(total, ident, ident),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, ident, ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("edge.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
