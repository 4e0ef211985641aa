import { createClient, type Client } from "@connectrpc/connect";
import OpenAI from "openai";
import { connect } from "node:net";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import type { ServerConfigInput } from "../../server/config.js";
import { transportFor } from "../auth/support.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

export const ADMIN_TOKEN = `openai-admin-${"a".repeat(32)}`;

/** A studio with auth on: an admin, a client (the API key) and a worker token. */
export interface ApiStudio {
  t: TestStudio;
  url: string;
  clientToken: string;
  workerToken: string;
  jobs: Client<typeof JobService>;
  registry: Client<typeof RegistryService>;
  /** The official SDK against the studio's /v1, with the client token (no retries: each test sees the first answer). */
  openai(apiKey?: string): OpenAI;
  stop(): Promise<void>;
}

export async function startApiStudio(config: Partial<ServerConfigInput> = {}): Promise<ApiStudio> {
  const t = await startTestStudio({ adminToken: ADMIN_TOKEN, ...config });
  const admin = createClient(TokenService, transportFor(t.url, ADMIN_TOKEN));
  const clientToken = (await admin.createToken({ name: "openai client", role: TokenRole.CLIENT })).secret;
  const workerToken = (await admin.createToken({ name: "worker", role: TokenRole.WORKER })).secret;
  return {
    t,
    url: t.url,
    clientToken,
    workerToken,
    jobs: createClient(JobService, transportFor(t.url, clientToken)),
    registry: createClient(RegistryService, transportFor(t.url, ADMIN_TOKEN)),
    openai: (apiKey = clientToken) => new OpenAI({ apiKey, baseURL: `${t.url}/v1`, maxRetries: 0 }),
    stop: () => t.stop(),
  };
}

/** Registers a synthetic model (no files), optionally disabled. */
export async function addSyntheticModel(s: ApiStudio, name: string, enabled = true): Promise<void> {
  await s.registry.createModel({ name, source: { engine: ModelEngine.SYNTHETIC }, enabled });
}

/** The job id inside an OpenAI response id (chatcmpl-<id>, cmpl-<id>). */
export const jobIdOf = (responseId: string) => responseId.replace(/^(chatcmpl|cmpl)-/, "");

/** The status and body of an SDK error (APIError), or a failure when the call succeeded. */
export async function apiError(p: Promise<unknown>): Promise<{ status: number | undefined; error: { message: string; type: string; param: string | null; code: string | null } }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OpenAI.APIError) return { status: err.status, error: err.error as never };
    throw err;
  }
  throw new Error("the call succeeded");
}

/** Sends raw bytes on a fresh connection and returns what comes back until the server answers a head (or closes). */
export function rawExchange(url: string, request: string, { waitMs = 5000 }: { waitMs?: number } = {}): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let got = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(got);
    }, waitMs);
    socket.on("data", (d) => {
      got += d.toString("utf8");
      if (/\r\n\r\n/.test(got) && /content-length: (\d+)/i.test(got)) {
        const length = Number(/content-length: (\d+)/i.exec(got)![1]);
        if (got.length - got.indexOf("\r\n\r\n") - 4 >= length) {
          clearTimeout(timer);
          socket.destroy();
          resolve(got);
        }
      }
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.on("error", reject);
    socket.write(request);
  });
}
