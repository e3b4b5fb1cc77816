"""A gRPC client (grpcio) for the end-to-end tests: calls `edge.Echo` at the address given (host:port,
cleartext HTTP/2) and prints one JSON line per call: the call, its status, details, messages (as
text) and trailing metadata.

  grpc_client.py ADDRESS KEY   (KEY names the server's fail-once state for this run)
"""

import json
import sys

import grpc


def outcome(name, call):
    try:
        reply = call()
        status, details = "OK", ""
    except grpc.RpcError as e:
        reply, status, details = None, e.code().name, e.details() or ""
        trailers = dict(e.trailing_metadata() or ())
    else:
        trailers = dict(reply[1].trailing_metadata() or ()) if isinstance(reply, tuple) else {}
        reply = reply[0] if isinstance(reply, tuple) else reply
    if isinstance(reply, bytes):
        reply = [reply]
    print(json.dumps({
        "call": name,
        "status": status,
        "details": details,
        "messages": [m.decode() for m in (reply or [])],
        "trailers": trailers,
    }), flush=True)


def main():
    ident = lambda b: b  # noqa: E731
    with grpc.insecure_channel(sys.argv[1]) as channel:
        say = channel.unary_unary("/edge.Echo/Say", ident, ident)
        count = channel.unary_stream("/edge.Echo/Count", ident, ident)
        total = channel.stream_unary("/edge.Echo/Sum", ident, ident)
        chat = channel.stream_stream("/edge.Echo/Chat", ident, ident)
        opts = {"timeout": 10, "wait_for_ready": False}

        outcome("say", lambda: say.with_call(b"hello", **opts))
        outcome("not-found", lambda: say.with_call(b"not-found", **opts))
        once = b"unavailable-once:" + sys.argv[2].encode()
        outcome("unavailable-once", lambda: say.with_call(once, **opts))

        def counted():
            call = count(b"5", **opts)
            messages = list(call)
            return messages, call
        outcome("count", counted)
        outcome("sum", lambda: total.with_call(iter([b"ab", b"cde", b"f"]), **opts))

        def chatted():
            call = chat(iter([b"x", b"y", b"z"]), **opts)
            messages = list(call)
            return messages, call
        outcome("chat", chatted)


if __name__ == "__main__":
    sys.exit(main())
