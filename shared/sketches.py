"""Latency sketches that travel: a DDSketch (1 % relative error) as protobuf in base64, merged where it arrives.

An api instance sketches its requests' durations for one heartbeat's interval and sends the sketch; the
monitor merges the sketches of every instance and interval into any window's exact-to-1 % percentiles,
which averaging per-instance percentiles could never give. The plain DDSketch (a dense store) is what the
protobuf decodes into, so both ends use it: its bins span the values seen, about 1,100 from 1 µs to an hour.
"""

from __future__ import annotations

import base64
import binascii

from ddsketch import DDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchMessage
from ddsketch.pb.proto import DDSketchProto
from google.protobuf.message import DecodeError

RELATIVE_ACCURACY = 0.01


def new_sketch() -> DDSketch:
    return DDSketch(RELATIVE_ACCURACY)


def encode(sketch: BaseDDSketch) -> str:
    message = DDSketchProto.to_proto(sketch)  # type: ignore[no-untyped-call]
    return base64.b64encode(message.SerializeToString()).decode("ascii")


def decode(text: str) -> DDSketch:
    """The sketch `encode` wrote; ValueError for anything else, or a sketch of another accuracy."""
    try:
        message = DDSketchMessage.FromString(base64.b64decode(text, validate=True))
        received = DDSketchProto.from_proto(message)  # type: ignore[no-untyped-call]
        sketch = new_sketch()
        sketch.merge(received)  # raises ValueError unless both map values to bins alike
    except (binascii.Error, DecodeError, ZeroDivisionError) as error:
        raise ValueError(f"not a latency sketch: {error}") from error
    return sketch
