import fs from "node:fs/promises";
import path from "node:path";
import { makeTestCert } from "../../test/helpers/test-cert.js";
import { terminate } from "./child.js";
import { freeLoopbackPort, onPickedPorts, PortTaken, waitForPort } from "./free-port.js";

/** A private nginx serving one directory, in the foreground, for the download benchmark. */
export interface NginxServer {
  /** http://127.0.0.1:port — files at /<name>, and rate-limited per connection at /limited/<name>. */
  origin: string;
  /** https://127.0.0.1:port — the same files over TLS (a self-signed certificate, `certFile`). */
  tlsOrigin: string;
  /** The PEM certificate the HTTPS listener presents (trust it with NODE_EXTRA_CA_CERTS, or curl --cacert). */
  certFile: string;
  stop(): Promise<void>;
}

/**
 * Starts Debian's nginx on a free loopback port with a temp config (daemon off,
 * master_process off: one process to reap), plain HTTP on one port and HTTPS on
 * another (the tests' self-signed P-256 certificate for 127.0.0.1 and localhost;
 * nginx's default TLS settings, so TLS 1.3 with AES-GCM as a model host would
 * negotiate). /limited/ applies `limit_rate` to each connection, which is what
 * parallel ranges are measured against.
 */
export async function startNginx(root: string, workDir: string, { limitRate = "20m", binary = "/usr/sbin/nginx" } = {}): Promise<NginxServer> {
  const { cert, key } = await makeTestCert(workDir);
  await fs.mkdir(path.join(workDir, "tmp"), { recursive: true });
  return onPickedPorts("nginx", () => spawnNginx({ root, workDir, cert, key, limitRate, binary }));
}

/** nginx on two ports picked here, once both listen; PortTaken when another socket had one of them first. */
async function spawnNginx({ root, workDir, cert, key, limitRate, binary }: { root: string; workDir: string; cert: string; key: string; limitRate: string; binary: string }): Promise<NginxServer> {
  const port = await freeLoopbackPort();
  const tlsPort = await freeLoopbackPort();
  const conf = path.join(workDir, "nginx.conf");
  const t = path.join(workDir, "tmp");
  await fs.writeFile(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${path.join(workDir, "nginx.pid")};
error_log ${path.join(workDir, "error.log")} warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path ${t}/body; proxy_temp_path ${t}/proxy; fastcgi_temp_path ${t}/fastcgi;
  uwsgi_temp_path ${t}/uwsgi; scgi_temp_path ${t}/scgi;
  server {
    listen 127.0.0.1:${port};
    listen 127.0.0.1:${tlsPort} ssl;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    root ${root};
    location /limited/ { alias ${root}/; limit_rate ${limitRate}; }
  }
}
`,
  );
  const proc = Bun.spawn([binary, "-p", workDir, "-c", conf, "-e", path.join(workDir, "error.log")], { stdout: "ignore", stderr: "inherit" });
  // A benchmark interrupted (exitOnSignals) must not leave nginx behind.
  const killOnExit = () => proc.kill("SIGKILL");
  process.once("exit", killOnExit);
  try {
    await Promise.race([
      Promise.all([waitForPort(port), waitForPort(tlsPort)]),
      proc.exited.then(async (code) => {
        const log = await fs.readFile(path.join(workDir, "error.log"), "utf8").catch(() => "");
        if (/Address already in use/i.test(log)) throw new PortTaken(`port ${port} or ${tlsPort} was taken before nginx bound it`);
        throw new Error(`nginx exited with ${code} before listening: ${log.trim()}`);
      }),
    ]);
  } catch (err) {
    process.off("exit", killOnExit);
    proc.kill("SIGKILL");
    await proc.exited;
    // A new start writes a fresh error log.
    await fs.rm(path.join(workDir, "error.log"), { force: true });
    throw err;
  }
  return {
    origin: `http://127.0.0.1:${port}`,
    tlsOrigin: `https://127.0.0.1:${tlsPort}`,
    certFile: cert,
    async stop() {
      process.off("exit", killOnExit);
      await terminate(proc, 5000);
    },
  };
}
