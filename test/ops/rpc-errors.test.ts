import { expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { InvalidModelSourceError } from "../../contract/model-source.js";
import { AuthError } from "../../server/auth/auth-gate.js";
import { TokenError } from "../../server/auth/token-store.js";
import { DispatchError, LeaseLostError, refusalOf } from "../../server/dispatch/dispatch-error.js";
import { JobError } from "../../server/jobs/job-errors.js";
import { OutputError } from "../../server/outputs/output-error.js";
import { connectErrorOf } from "../../server/ops/rpc-errors.js";
import { RegistryError } from "../../server/registry/registry-errors.js";

test("one mapping gives every domain error its Connect code, by class", () => {
  const cases: Array<[Error, Code]> = [
    [new JobError("job_not_found", "j"), Code.NotFound],
    [new JobError("idempotency_conflict", "j"), Code.AlreadyExists],
    [new RegistryError("model_disabled", "m", "m"), Code.FailedPrecondition],
    [new InvalidModelSourceError([{ path: "engine", message: "bad" }]), Code.InvalidArgument],
    [new DispatchError("permission_denied", "d"), Code.PermissionDenied],
    [new LeaseLostError("j", "l", "expired"), Code.FailedPrecondition],
    [new OutputError("resource_exhausted", "o"), Code.ResourceExhausted],
    [new TokenError("already_revoked", "t"), Code.FailedPrecondition],
    [new AuthError("unauthenticated", "a"), Code.Unauthenticated],
  ];
  for (const [err, code] of cases) {
    const mapped = connectErrorOf(err) as ConnectError;
    expect(mapped).toBeInstanceOf(ConnectError);
    expect([mapped.code, mapped.rawMessage]).toEqual([code, err.message]);
  }
  const connect = new ConnectError("as is", Code.Aborted);
  expect(connectErrorOf(connect)).toBe(connect);
  const other = new Error("a bug");
  expect(connectErrorOf(other)).toBe(other);
});

test("a Receipt names only refusals (dispatch and output errors), not every error whose code looks like a Connect code name", () => {
  expect(refusalOf(new OutputError("invalid_argument", "o"))).toEqual({ code: "invalid_argument", message: "o" });
  expect(refusalOf(new DispatchError("not_found", "d"))).toEqual({ code: "not_found", message: "d" });
  expect(refusalOf(new TokenError("not_found", "t"))).toBeUndefined();
  expect(refusalOf(Object.assign(new Error("duck"), { code: "not_found" }))).toBeUndefined();
});
