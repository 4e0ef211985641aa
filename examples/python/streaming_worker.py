#!/usr/bin/env python3
"""A Studio streaming worker in Python: WorkerService.Session (bidi streaming over gRPC).

    ./generate.sh                                   # the studio.v1 modules into ./gen
    STUDIO_TOKEN=stu_... PYTHONPATH=gen python3 streaming_worker.py --server http://127.0.0.1:8080

It sends hello, reads welcome, and for each offer reports progress, uploads the outputs as
OutputChunks (at most 1 MiB each, in order, the first at offset 0, each naming the output's
total_size and sha256), sends JobComplete with output_count, and waits for the complete's Receipt.
While it holds leases it heartbeats them every Welcome.heartbeat_interval_ms; idle, it sends
nothing (the studio keeps offering while the connection answers HTTP/2 PINGs, which gRPC does by
itself). With --jobs N it drains after N jobs and ends the stream; the studio then closes it.
"""

import argparse
import queue
import threading

import grpc

from studio.v1 import job_pb2, worker_service_pb2 as ws, worker_service_pb2_grpc as ws_grpc
from studio_common import ENGINES, RUNNING, UPLOADING, channel, describe, log, metadata, output_chunks, run_task


class StreamingWorker:
    def __init__(self, stub, name, slots, jobs_wanted):
        self.stub = stub
        self.name = name
        self.slots = slots
        self.jobs_wanted = jobs_wanted
        self.outbox = queue.Queue()
        self.lock = threading.Lock()
        self.leases = {}  # lease_id -> job_id, while held
        self.receipts = {}  # lease_id -> queue of its Receipts
        self.cancelled = set()
        self.finished = 0
        self.interval_s = 1.0
        self.closing = threading.Event()

    def send(self, **message):
        self.outbox.put(ws.SessionRequest(**message))

    def requests(self):
        """The request stream: what send() queues, until None ends it (half-close)."""
        while True:
            message = self.outbox.get()
            if message is None:
                return
            yield message

    def run(self):
        self.send(hello=ws.WorkerHello(name=self.name, version="python-example", engines=ENGINES, slots=self.slots))
        call = self.stub.Session(self.requests(), metadata=metadata())
        for response in call:
            # A batch (only sent to workers whose hello sets accepts_batches) is its messages in order.
            messages = response.batch.messages if response.WhichOneof("message") == "batch" else [response]
            for message in messages:
                self.handle(message)
        log("session ended", finished=self.finished)

    def handle(self, message):
        kind = message.WhichOneof("message")
        if kind == "welcome":
            welcome = message.welcome
            self.interval_s = welcome.heartbeat_interval_ms / 1000
            log("connected", worker_id=welcome.worker_id, heartbeat_interval_ms=welcome.heartbeat_interval_ms,
                lease_ttl_ms=welcome.lease_ttl_ms)
            threading.Thread(target=self.heartbeats, daemon=True).start()
        elif kind == "offer":
            offer = message.offer
            with self.lock:
                self.leases[offer.lease_id] = offer.job_id
                self.receipts[offer.lease_id] = queue.Queue()
            threading.Thread(target=self.run_job, args=(offer,), daemon=True).start()
        elif kind == "cancel":
            cancel = message.cancel
            with self.lock:
                self.leases.pop(cancel.lease_id, None)
                self.cancelled.add(cancel.lease_id)
            log("cancelled", job_id=cancel.job_id, reason=cancel.reason)
        elif kind == "receipt":
            with self.lock:
                waiting = self.receipts.get(message.receipt.lease_id)
            if waiting is not None:
                waiting.put(message.receipt)

    def heartbeats(self):
        """Every heartbeat interval, the leases held (nothing while idle)."""
        while not self.closing.wait(self.interval_s):
            with self.lock:
                held = list(self.leases)
            if held:
                self.send(heartbeat=ws.WorkerHeartbeat(lease_ids=held))

    def run_job(self, offer):
        lease = {"job_id": offer.job_id, "lease_id": offer.lease_id}
        log("offer", job_id=offer.job_id, model=offer.model, attempt=offer.attempt)
        try:
            if not offer.HasField("model_source") or offer.model_source.engine not in ENGINES:
                self.send(decline=ws.JobDecline(reason="this worker runs the synthetic engine only", **lease))
                return
            self.send(progress=ws.JobProgressReport(progress=job_pb2.JobProgress(phase=RUNNING, step=0, steps=1), **lease))
            outputs = run_task(offer.task, offer.model_source)
            self.send(progress=ws.JobProgressReport(progress=job_pb2.JobProgress(phase=UPLOADING, step=1, steps=1), **lease))
            for index, (mime_type, data) in enumerate(outputs):
                for chunk in output_chunks(offer.job_id, offer.lease_id, index, mime_type, data, ws.OutputChunk):
                    self.send(output_chunk=chunk)
            with self.lock:
                if offer.lease_id in self.cancelled:
                    return
            self.send(complete=ws.JobComplete(output_count=len(outputs), **lease))
            # A refused chunk is answered with a Receipt (ok false) at once, the complete always; the
            # first receipt that is not ok ends the job here (the studio failed or kept the lease).
            receipt = self.receipts[offer.lease_id].get(timeout=120)
            if not receipt.ok:
                index = receipt.output_index if receipt.HasField("output_index") else None
                log("refused", job_id=offer.job_id, output_index=index, code=receipt.code, message=receipt.message)
                return
            log("completed", job_id=offer.job_id, outputs=[len(d) for _, d in outputs])
            self.job_finished()
        except Exception as err:  # a bug in the task's handling: tell the studio, keep serving
            self.send(fail=ws.JobFail(error=describe(err), retryable=False, **lease))
            log("failed", job_id=offer.job_id, error=describe(err))
        finally:
            with self.lock:
                self.leases.pop(offer.lease_id, None)
                self.receipts.pop(offer.lease_id, None)

    def job_finished(self):
        with self.lock:
            self.finished += 1
            done = self.jobs_wanted and self.finished >= self.jobs_wanted
        if done:
            self.send(drain=ws.WorkerDrain())
            self.closing.set()
            self.outbox.put(None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8080")
    parser.add_argument("--ca-file", help="PEM file of the CA that signed an https:// studio's certificate")
    parser.add_argument("--name", default="python-streaming")
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=0, help="finish after this many jobs (0: run until killed)")
    args = parser.parse_args()
    stub = ws_grpc.WorkerServiceStub(channel(args.server, args.ca_file))
    try:
        StreamingWorker(stub, args.name, args.slots, args.jobs).run()
    except grpc.RpcError as err:
        log("session failed", error=describe(err))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
