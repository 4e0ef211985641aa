/**
 * A worker-like child process for the restart test: ensures one file into a
 * cache dir and prints "done <path>" (the test usually SIGKILLs it first).
 * argv: cacheDir url filename sha256
 */
import { DownloadManager } from "../../../worker/download/index.js";
import { modelFile } from "./helpers.js";

const [cacheDir, url, filename, sha] = process.argv.slice(2);
const dm = new DownloadManager({ cacheDir: cacheDir!, stallTimeoutMs: 60_000, progressIntervalMs: 0 });
const cached = await dm.ensure(modelFile(url!, filename!, { sha256: sha }), {
  onProgress: (p) => console.log(`progress ${p.bytesDone}`),
});
console.log(`done ${cached.path}`);
