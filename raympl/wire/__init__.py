"""Everything that travels between agents, and its exact size on the wire.

One message schema for every algorithm: a host's messages of one phase form one Arrow record batch
(`batch.py`) with one row per message:

  agent      int32          the sender (-1: the simulated server)
  reference  int32          0 for a self-contained message; for a delta-coded mask message, the round
                            of the earlier message of this sender it is coded against
  payload    large_binary   the encoded bytes; the simulator charges 8 bits per byte sent

Payload encodings, one module each:
  bitmask.py       binary masks, bit-packed (1 bit per weight, each layer byte-aligned)
  entropy.py       binary masks arithmetic-coded given each layer's ones count, in full or as the
                   flips against the previous message (--codec entropy / delta)
  floats.py        dense float32 models, and sparse ones (bit-packed support + kept values)
  qsgd.py          QSGD's stochastic quantizer (values to levels)
  vector_code.py   the Golomb-Rice / Elias-gamma code for quantized vectors (Malcom-PSGD)
"""

from __future__ import annotations

from raympl.errors import PayloadError

__all__ = ["PayloadError"]  # raised by the codecs below; imported from here by receivers

