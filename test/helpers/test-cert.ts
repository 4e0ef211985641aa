import { join } from "node:path";

/** Paths of a test certificate and its key. */
export interface TestCert {
  cert: string;
  key: string;
}

/**
 * Makes a self-signed P-256 certificate for localhost and 127.0.0.1 in `dir` with openssl
 * (argv, no shell), for TLS tests and the download benchmark's nginx only. Throws with
 * openssl's stderr when it fails.
 */
export async function makeTestCert(dir: string): Promise<TestCert> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const proc = Bun.spawn(
    [
      "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-days", "2", "-keyout", key, "-out", cert,
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  if ((await proc.exited) !== 0) throw new Error(`openssl failed: ${await new Response(proc.stderr).text()}`);
  return { cert, key };
}
