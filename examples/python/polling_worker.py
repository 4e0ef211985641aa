#!/usr/bin/env python3
"""A Studio polling worker in Python: WorkerService's unary calls and CompleteJobStream (gRPC).

    ./generate.sh                                   # the studio.v1 modules into ./gen
    STUDIO_TOKEN=stu_... PYTHONPATH=gen python3 polling_worker.py --server http://127.0.0.1:8080

ClaimJob long-polls (wait_ms, at most 30000) for a job its engines can run; a thread renews the
lease with Heartbeat a few times per lease period until the job ends; ReportProgress moves the job
to RUNNING; CompleteJobStream uploads every output as OutputChunks (any size up to the studio's
--max-output-bytes) and then the complete, in one call. A failure is reported with FailJob.
"""

import argparse
import threading
import time

import grpc

from studio.v1 import job_pb2, worker_service_pb2 as ws, worker_service_pb2_grpc as ws_grpc
from studio_common import ENGINES, RUNNING, UPLOADING, channel, describe, log, metadata, output_chunks, run_task


class LeaseKeeper:
    """Renews one lease a few times per lease period until stopped."""

    def __init__(self, stub, lease_id, expires_at):
        self.stub = stub
        self.lease_id = lease_id
        self.period_s = max(0.2, expires_at.ToMilliseconds() / 1000 - time.time())
        self.stopped = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stopped.wait(self.period_s / 3):
            try:
                r = self.stub.Heartbeat(ws.HeartbeatRequest(lease_ids=[self.lease_id]), metadata=metadata())
            except grpc.RpcError as err:
                log("heartbeat failed", error=describe(err))
                continue
            if self.lease_id in r.lost_lease_ids:
                log("lease lost", lease_id=self.lease_id)
                return

    def stop(self):
        self.stopped.set()


def run_claim(stub, claim):
    lease = {"job_id": claim.job_id, "lease_id": claim.lease_id}
    stub.ReportProgress(ws.ReportProgressRequest(progress=job_pb2.JobProgress(phase=RUNNING, step=0, steps=1), **lease),
                        metadata=metadata())
    outputs = run_task(claim.task, claim.model_source if claim.HasField("model_source") else None)
    stub.ReportProgress(ws.ReportProgressRequest(progress=job_pb2.JobProgress(phase=UPLOADING, step=1, steps=1), **lease),
                        metadata=metadata())

    def messages():
        for index, (mime_type, data) in enumerate(outputs):
            for chunk in output_chunks(claim.job_id, claim.lease_id, index, mime_type, data, ws.OutputChunk):
                yield ws.CompleteJobStreamRequest(output_chunk=chunk)
        yield ws.CompleteJobStreamRequest(complete=ws.CompleteJobRequest(**lease))

    response = stub.CompleteJobStream(messages(), metadata=metadata())
    log("completed", job_id=claim.job_id, status=job_pb2.JobStatus.Name(response.job.status),
        outputs=[o.size_bytes for o in response.job.outputs])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8080")
    parser.add_argument("--ca-file", help="PEM file of the CA that signed an https:// studio's certificate")
    parser.add_argument("--name", default="python-polling")
    parser.add_argument("--jobs", type=int, default=0, help="finish after this many jobs (0: run until killed)")
    args = parser.parse_args()
    stub = ws_grpc.WorkerServiceStub(channel(args.server, args.ca_file))
    finished = 0
    while not args.jobs or finished < args.jobs:
        try:
            reply = stub.ClaimJob(ws.ClaimJobRequest(worker_name=args.name, engines=ENGINES, wait_ms=10_000),
                                  metadata=metadata())
        except grpc.RpcError as err:
            if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                log("refused", error=describe(err))
                raise SystemExit(1)
            log("claim failed", error=describe(err))
            time.sleep(1)
            continue
        if not reply.HasField("claim"):
            continue
        claim = reply.claim
        log("claimed", job_id=claim.job_id, model=claim.model, attempt=claim.attempt)
        keeper = LeaseKeeper(stub, claim.lease_id, claim.lease_expires_at)
        try:
            run_claim(stub, claim)
            finished += 1
        except grpc.RpcError as err:
            log("failed", job_id=claim.job_id, error=describe(err))
            try:
                stub.FailJob(ws.FailJobRequest(job_id=claim.job_id, lease_id=claim.lease_id, error=describe(err),
                                               retryable=True), metadata=metadata())
            except grpc.RpcError as again:
                log("fail refused", job_id=claim.job_id, error=describe(again))
        finally:
            keeper.stop()


if __name__ == "__main__":
    main()
