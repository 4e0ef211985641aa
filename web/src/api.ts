import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { TokenService } from "../../gen/studio/v1/token_service_pb.js";
import type { TokenSession } from "./session.js";

/** The RPC clients the page uses, all on one Connect transport to the studio that served it. */
export interface Api {
  registry: Client<typeof RegistryService>;
  jobs: Client<typeof JobService>;
  workers: Client<typeof WorkerService>;
  /** WhoAmI only: the page never manages tokens. */
  tokens: Client<typeof TokenService>;
  session: TokenSession;
  /** Fetches a plain HTTP path of the studio with the bearer token; throws HttpError on a non-2xx answer. */
  fetchPath(path: string): Promise<Response>;
}

/** A plain HTTP request the studio refused; status is the HTTP status. */
export class HttpError extends Error {
  readonly code = "http_error";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** Adds `Authorization: Bearer` to every RPC while a token is set. */
function bearer(session: TokenSession): Interceptor {
  return (next) => async (req) => {
    const token = session.token;
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/**
 * Connect protocol (JSON) over the browser's fetch, which is HTTP/1.1 to the studio;
 * server streams (WatchJobs) work over it, bidi streams are left to workers.
 */
export function createApi(session: TokenSession, baseUrl = location.origin): Api {
  const transport = createConnectTransport({
    baseUrl,
    useBinaryFormat: false,
    interceptors: [bearer(session)],
  });
  return {
    registry: createClient(RegistryService, transport),
    jobs: createClient(JobService, transport),
    workers: createClient(WorkerService, transport),
    tokens: createClient(TokenService, transport),
    session,
    async fetchPath(path) {
      const res = await fetch(new URL(path, baseUrl), { headers: session.headers() });
      if (!res.ok) {
        const text = (await res.text()).trim();
        throw new HttpError(res.status, `GET ${path}: ${res.status} ${text || res.statusText}`);
      }
      return res;
    },
  };
}
