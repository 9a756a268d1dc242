"""The OTLP/HTTP receiver of the trace tests: oteltap (PyPI) listens on
127.0.0.1:PORT for protobuf export requests and decodes them into opentelemetry-proto
spans; each span is printed as one JSON line (ids in hex), after a first `ready` line.
"""

import asyncio
import json
import sys

from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings


def plain(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


async def main(port):
    settings = OtelTapHttpProtobufReceiverSettings(http_port=port)
    async with OtelTapHttpProtobufReceiver(settings) as receiver:
        print(json.dumps({"ready": True}), flush=True)
        # The first step of the iteration subscribes before anything can arrive.
        async for span in receiver.stream_traces():
            line = {
                "name": span.name,
                "trace_id": span.trace_id.hex(),
                "span_id": span.span_id.hex(),
                "parent_span_id": span.parent_span_id.hex(),
                "start_ns": span.start_time_unix_nano,
                "end_ns": span.end_time_unix_nano,
                "attributes": {a.key: plain(a.value) for a in span.attributes},
            }
            print(json.dumps(line), flush=True)


asyncio.run(main(int(sys.argv[1])))
