import { create, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { ConnectError, createRouterTransport, type ConnectRouter, type Transport } from "@connectrpc/connect";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { createAuthInterceptor } from "../../server/auth/auth-interceptor.js";
import { methodPolicies } from "../../server/auth/method-policy.js";
import { authRequestGate } from "../../server/auth/request-gate.js";
import type { AuthEvents } from "../../server/auth/auth-events.js";
import type { AuthGate } from "../../server/auth/auth-gate.js";
import type { StreamLimiter } from "../../server/auth/stream-limiter.js";

const GEN = join(import.meta.dir, "../../gen/studio/v1");

/** Every service in the generated contract, found by scanning gen/ so that new services are covered too. */
export async function contractServices(): Promise<DescService[]> {
  const services: DescService[] = [];
  for (const file of readdirSync(GEN).filter((f) => f.endsWith("_pb.ts")).sort()) {
    const mod: Record<string, unknown> = await import(join(GEN, file));
    for (const value of Object.values(mod)) {
      if (value && typeof value === "object" && (value as { kind?: string }).kind === "service") services.push(value as DescService);
    }
  }
  return services;
}

/**
 * Handlers that answer every RPC with an empty message at once: the matrix tests
 * the interceptor's decision, not the services behind it.
 */
function probeImpl(service: DescService): Record<string, unknown> {
  const impl: Record<string, unknown> = {};
  for (const m of service.methods) {
    switch (m.methodKind) {
      case "unary":
        impl[m.localName] = () => create(m.output);
        break;
      case "server_streaming":
        impl[m.localName] = async function* () {};
        break;
      case "client_streaming":
        impl[m.localName] = async (reqs: AsyncIterable<unknown>) => {
          for await (const _ of reqs);
          return create(m.output);
        };
        break;
      case "bidi_streaming":
        impl[m.localName] = async function* (reqs: AsyncIterable<unknown>) {
          for await (const _ of reqs);
        };
        break;
    }
  }
  return impl;
}

/** An in-memory transport to probe handlers (or `overrides`) behind the real auth interceptor. */
export function probeTransport(
  services: DescService[],
  auth: { gate: AuthGate; events: AuthEvents; limiter: StreamLimiter },
  overrides: Record<string, Record<string, unknown>> = {},
): Transport {
  return createRouterTransport(
    (router: ConnectRouter) => {
      for (const s of services) router.service(s, { ...probeImpl(s), ...overrides[s.typeName] } as never);
    },
    {
      router: {
        // As the studio has it: the gate decides before the body is read, the interceptor bounds and ends streams.
        requestGate: authRequestGate(auth.gate, methodPolicies())(() => {}),
        interceptors: [createAuthInterceptor(auth.gate, auth.events, auth.limiter)],
      },
    },
  );
}

/** Calls any method with an empty request (and an empty request stream); resolves to the Connect code name or "ok". */
export async function callAny(transport: Transport, method: DescMethod, token?: string): Promise<string> {
  const header = token ? { authorization: `Bearer ${token}` } : undefined;
  try {
    if (method.methodKind === "unary") {
      await transport.unary(method as never, undefined, undefined, header, {});
    } else {
      const one = method.methodKind === "server_streaming";
      const input = (async function* () {
        if (one) yield {};
      })();
      const res = await transport.stream(method as never, undefined, undefined, header, input);
      for await (const _ of res.message);
    }
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code.toString();
  }
}
