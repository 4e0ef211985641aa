import fs from "node:fs/promises";
import path from "node:path";
import { freeLoopbackPort, waitForPort } from "./free-port.js";

/** A private nginx serving one directory, in the foreground, for the download benchmark. */
export interface NginxServer {
  /** http://127.0.0.1:port — files at /<name>, and rate-limited per connection at /limited/<name>. */
  origin: string;
  stop(): Promise<void>;
}

/**
 * Starts Debian's nginx on a free loopback port with a temp config (daemon off,
 * master_process off: one process to reap). /limited/ applies `limit_rate` to
 * each connection, which is what parallel ranges are measured against.
 */
export async function startNginx(root: string, workDir: string, { limitRate = "20m", binary = "/usr/sbin/nginx" } = {}): Promise<NginxServer> {
  const port = await freeLoopbackPort();
  await fs.mkdir(path.join(workDir, "tmp"), { recursive: true });
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
    root ${root};
    location /limited/ { alias ${root}/; limit_rate ${limitRate}; }
  }
}
`,
  );
  const proc = Bun.spawn([binary, "-p", workDir, "-c", conf, "-e", path.join(workDir, "error.log")], { stdout: "ignore", stderr: "inherit" });
  try {
    await waitForPort(port);
  } catch (err) {
    proc.kill("SIGKILL");
    await proc.exited;
    throw err;
  }
  return {
    origin: `http://127.0.0.1:${port}`,
    async stop() {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}
