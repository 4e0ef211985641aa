"""What both example workers share: the connection, the token, logging, and a toy engine.

The engine stands in for a real one (it claims MODEL_ENGINE_SYNTHETIC): image tasks become PNGs of
the task's size, text tasks the JSON document text jobs return. Everything else is the contract as
proto/studio/v1 defines it, used through the modules generate.sh makes.
"""

import hashlib
import json
import os
import random
import struct
import sys
import time
import zlib

import grpc

from studio.v1 import job_pb2, model_pb2

# OutputChunk.data carries at most 1 MiB.
CHUNK_BYTES = 1024 * 1024


def log(event, **fields):
    """One JSON object per line on stdout (what the test reads)."""
    print(json.dumps({"event": event, **fields}), flush=True)


def channel(server, ca_file=None):
    """A gRPC channel to the studio: http://host:port (cleartext HTTP/2) or https://host:port."""
    if server.startswith("https://"):
        root = open(ca_file, "rb").read() if ca_file else None
        return grpc.secure_channel(server[len("https://"):], grpc.ssl_channel_credentials(root_certificates=root))
    if server.startswith("http://"):
        return grpc.insecure_channel(server[len("http://"):])
    raise SystemExit(f"--server must be http://host:port or https://host:port (got {server!r})")


def metadata():
    """The bearer token (a worker token) from STUDIO_TOKEN; none when the studio runs open."""
    token = os.environ.get("STUDIO_TOKEN", "")
    return [("authorization", f"Bearer {token}")] if token else []


def _png(width, height, seed):
    """A width x height RGB PNG of deterministic noise (it does not compress: sizes stay as asked)."""
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def run_task(task, source):
    """The outputs of a task as (mime_type, bytes): batch_count PNGs, or one text JSON document."""
    kind = task.WhichOneof("kind")
    if kind == "image":
        image = task.image
        defaults = source.cli_defaults if source is not None else model_pb2.ModelCliDefaults()
        width = image.overrides.width or defaults.width or 64
        height = image.overrides.height or defaults.height or 64
        seed = image.seed if image.HasField("seed") else 0
        return [("image/png", _png(width, height, f"{image.prompt}/{seed}/{i}")) for i in range(max(1, image.batch_count))]
    if kind == "text":
        prompt = task.text.prompt or " ".join(m.content for m in task.text.messages)
        text = f"echo: {prompt}"
        doc = {"text": text, "finishReason": "stop", "usage": {"promptTokens": len(prompt.split()), "completionTokens": len(text.split())}}
        return [("application/json", json.dumps(doc).encode())]
    raise ValueError("the task sets neither image nor text")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def output_chunks(job_id, lease_id, index, mime_type, data, make):
    """The OutputChunk messages of one output, in order (an empty output is one empty chunk)."""
    digest = sha256(data)
    offset = 0
    while True:
        piece = data[offset:offset + CHUNK_BYTES]
        yield make(job_id=job_id, lease_id=lease_id, index=index, mime_type=mime_type,
                   total_size=len(data), sha256=digest, offset=offset, data=piece)
        offset += len(piece)
        if offset >= len(data):
            return


def describe(err):
    """A grpc.RpcError as 'CODE: details'."""
    if isinstance(err, grpc.RpcError):
        return f"{err.code().name}: {err.details()}"
    return repr(err)


def fail(message):
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


def now_ms():
    return int(time.time() * 1000)


ENGINES = [model_pb2.MODEL_ENGINE_SYNTHETIC]
RUNNING = job_pb2.JOB_PHASE_RUNNING
UPLOADING = job_pb2.JOB_PHASE_UPLOADING
