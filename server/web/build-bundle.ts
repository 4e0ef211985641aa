import { gzipSync } from "node:zlib";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

/** One file of the built page, held in memory and served as is. */
export interface WebAsset {
  body: Uint8Array;
  /** The same bytes gzipped, when that is smaller. */
  gzip?: Uint8Array;
  contentType: string;
  etag: string;
}

/** The admin page: index.html plus hashed assets under /assets/. */
export interface WebBundle {
  index: WebAsset;
  /** Keyed by file name (no folder): `main-1a2b3c4d.js`. */
  assets: Map<string, WebAsset>;
}

/** Raised when the page's sources do not build; the message holds Bun's build log. */
export class WebBuildError extends Error {
  readonly code = "web_build_failed";
  constructor(message: string) {
    super(message);
    this.name = "WebBuildError";
  }
}

const WEB_ROOT = fileURLToPath(new URL("../../web/", import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  map: "application/json; charset=utf-8",
  html: "text/html; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
};

/** The content type for a file name by its extension. */
export function contentTypeFor(name: string): string {
  const ext = name.slice(name.lastIndexOf(".") + 1).toLowerCase();
  return CONTENT_TYPES[ext] ?? "application/octet-stream";
}

function asset(name: string, body: Uint8Array): WebAsset {
  const zipped = gzipSync(body, { level: 9 });
  const etag = `"${new Bun.CryptoHasher("sha256").update(body).digest("hex").slice(0, 32)}"`;
  return {
    body,
    gzip: zipped.byteLength < body.byteLength * 0.9 ? zipped : undefined,
    contentType: contentTypeFor(name),
    etag,
  };
}

/**
 * Builds web/src/main.ts (and the CSS it imports) with Bun.build into memory.
 * The studio builds at run time rather than committing output, so a fresh clone
 * serves the page with `bun run server` and the page can never be stale.
 */
export async function buildWebBundle(options: { minify?: boolean } = {}): Promise<WebBundle> {
  const result = await Bun.build({
    entrypoints: [`${WEB_ROOT}src/main.ts`],
    target: "browser",
    format: "esm",
    minify: options.minify ?? true,
    sourcemap: "linked",
    naming: { entry: "[name]-[hash].[ext]", chunk: "[name]-[hash].[ext]", asset: "[name]-[hash].[ext]" },
    publicPath: "/assets/",
    define: { "process.env.NODE_ENV": '"production"' },
    throw: false,
  });
  if (!result.success) {
    throw new WebBuildError(`the admin page did not build: ${result.logs.map((l) => String(l)).join("\n")}`);
  }
  const assets = new Map<string, WebAsset>();
  let script: string | undefined;
  const styles: string[] = [];
  for (const out of result.outputs) {
    const name = out.path.slice(out.path.lastIndexOf("/") + 1);
    assets.set(name, asset(name, new Uint8Array(await out.arrayBuffer())));
    if (out.kind === "entry-point") script = name;
    else if (name.endsWith(".css")) styles.push(name);
  }
  if (!script) throw new WebBuildError("the admin page built without an entry point");
  const template = await readFile(`${WEB_ROOT}index.html`, "utf8");
  const html = template
    .replace("<!-- styles -->", styles.map((s) => `<link rel="stylesheet" href="/assets/${s}">`).join("\n    "))
    .replace("<!-- script -->", `<script type="module" src="/assets/${script}"></script>`);
  return { index: asset("index.html", new TextEncoder().encode(html)), assets };
}
