import type { ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import type { ModelFileOnDisk } from "./real-engines.js";

/**
 * A local HTTP server for model files on disk (streamed from the file, not held in memory) that
 * counts the GETs of each path; it serves ranges, so the worker fetches large files in parallel parts.
 * The real-engine tests and the benchmarks register the tiny models with the studio through it.
 */
export function startModelServer(files: ModelFileOnDisk[]) {
  const byPath = new Map(files.map((f) => [`/${f.name}`, f]));
  const gets = new Map<string, number>();
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const path = new URL(req.url).pathname;
      const file = byPath.get(path);
      if (!file) return new Response("not found", { status: 404 });
      if (req.method === "GET") gets.set(path, (gets.get(path) ?? 0) + 1);
      // Bun answers Range requests for a file body itself (206 and Content-Range), as a CDN would.
      return new Response(Bun.file(file.path), { headers: { "content-type": "application/octet-stream" } });
    },
  });
  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    gets,
    /** The registry's ModelFile for one served file. */
    file(role: ModelFileRole, f: ModelFileOnDisk, filename = f.name) {
      return { role, filename, url: `${url}/${f.name}`, sha256: f.sha256, approxBytes: BigInt(f.size) };
    },
    stop: () => server.stop(true),
  };
}

export type ModelServer = ReturnType<typeof startModelServer>;
