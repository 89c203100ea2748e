"""A host's messages of one phase as one Arrow record batch (schema in raympl/wire/__init__.py).

The payload column's data buffer is contiguous, so Ray stores and ships the batch zero-copy, and
receivers read each payload as a read-only view into it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from raympl.wire import PayloadError

SCHEMA = pa.schema([("agent", pa.int32()), ("reference", pa.int32()), ("payload", pa.large_binary())])
SELF_CONTAINED = 0  # `reference` of a message that decodes on its own


class Message(NamedTuple):
    agent: int
    reference: int
    payload: np.ndarray  # uint8


def encode(messages: list[Message]) -> pa.RecordBatch:
    """One record batch holding these messages."""
    offsets = np.zeros(len(messages) + 1, dtype=np.int64)
    np.cumsum([m.payload.size for m in messages], out=offsets[1:])
    data = np.concatenate([m.payload for m in messages]) if messages else np.zeros(0, dtype=np.uint8)
    payloads = pa.Array.from_buffers(pa.large_binary(), len(messages),
                                     [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return pa.RecordBatch.from_arrays([pa.array([m.agent for m in messages], pa.int32()),
                                       pa.array([m.reference for m in messages], pa.int32()), payloads],
                                      schema=SCHEMA)


def messages(batch: pa.RecordBatch) -> list[Message]:
    """The batch's messages, payloads as zero-copy read-only uint8 views into it."""
    if batch.schema != SCHEMA:
        raise PayloadError(f"corrupt message batch: schema {batch.schema} is not {SCHEMA}")
    column = batch.column(2)
    start = column.offset
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[start:start + len(column) + 1]
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)
    agents, references = batch.column(0).to_numpy(), batch.column(1).to_numpy()
    return [Message(int(a), int(r), data[offsets[i]:offsets[i + 1]])
            for i, (a, r) in enumerate(zip(agents, references, strict=True))]
