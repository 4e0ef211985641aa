import { Code, ConnectError } from "@connectrpc/connect";

/** The Connect code and message a call fails with; throws when it succeeds. */
export async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}
