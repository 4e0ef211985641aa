import { SQL as BunSQL } from "bun";
import type { SQL } from "drizzle-orm";
import { drizzle as drizzleBunSql } from "drizzle-orm/bun-sql";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePostgresJs } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { redactDatabaseUrl } from "./database-url.js";
import * as schema from "./schema.js";

/** The two PostgreSQL clients drizzle runs on here; bench/dispatch.ts compares them (README, Performance). */
export type PgDriver = "bun-sql" | "postgres-js";

export type PgOrm = PgDatabase<PgQueryResultHKT, typeof schema>;

/** Runs drizzle `sql` statements: the pool, or one transaction. */
export interface PgQuery {
  rows<T = Record<string, unknown>>(query: SQL): Promise<T[]>;
}

/** The studio's PostgreSQL handle: drizzle over the chosen client, transactions, and LISTEN. */
export interface PgDb extends PgQuery {
  readonly orm: PgOrm;
  readonly driver: PgDriver;
  /** This process's application_name: every notification a trigger sends names it, so a replica knows its own. */
  readonly applicationName: string;
  /** The URL with its password replaced by ***. */
  readonly redactedUrl: string;
  /** Runs fn in one transaction (READ COMMITTED); it commits when fn resolves. */
  tx<T>(fn: (q: PgQuery) => Promise<T>): Promise<T>;
  /** LISTENs on a channel (re-established by the client after a lost connection); resolves to the function that stops. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface PgConnectOptions {
  url: string;
  applicationName: string;
  driver?: PgDriver;
  /** Pool size. */
  max?: number;
  /** Seconds to wait for a connection before failing the query (never a hang). */
  connectTimeoutSeconds?: number;
}

/** Server-side limits every connection sets at start-up: a stuck statement or transaction ends instead of holding locks. */
const SESSION_SETTINGS = { statement_timeout: "30000", idle_in_transaction_session_timeout: "60000", lock_timeout: "10000" };

/** The driver the studio uses unless STUDIO_PG_DRIVER names the other (benchmarks compare both). */
export function defaultPgDriver(env: Record<string, string | undefined> = process.env): PgDriver {
  return env.STUDIO_PG_DRIVER === "postgres-js" ? "postgres-js" : "bun-sql";
}

/** Opens a pool (lazily: the first query connects) on the chosen driver with drizzle over it. */
export function connectPg({ url, applicationName, driver = defaultPgDriver(), max = 10, connectTimeoutSeconds = 5 }: PgConnectOptions): PgDb {
  const connection = { application_name: applicationName, ...SESSION_SETTINGS };
  if (driver === "postgres-js") {
    const client = postgres(url, {
      max,
      connect_timeout: connectTimeoutSeconds,
      idle_timeout: 0,
      connection: connection as Record<string, string>,
      onnotice: () => {},
      // Times are bigint columns: numbers in the studio (exact below 2^53), as on SQLite.
      types: { bigint: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } } as never,
    });
    const orm = drizzlePostgresJs({ client, schema }) as unknown as PgOrm;
    return wrap(orm, driver, applicationName, url, {
      listen: async (channel, onPayload) => {
        const sub = await client.listen(channel, onPayload);
        return () => sub.unlisten();
      },
      close: () => client.end({ timeout: 5 }),
    });
  }
  const client = new BunSQL({ url, max, connectionTimeout: connectTimeoutSeconds, idleTimeout: 0, connection } as ConstructorParameters<typeof BunSQL>[0]);
  const orm = drizzleBunSql({ client, schema }) as unknown as PgOrm;
  return wrap(orm, driver, applicationName, url, {
    listen: async (channel, onPayload) => {
      const sub = (await (client as unknown as { listen(c: string, f: (p: string) => void): Promise<{ unlisten?: () => Promise<void> }> }).listen(
        channel,
        onPayload,
      ));
      return async () => {
        await sub?.unlisten?.();
      };
    },
    close: () => client.close({ timeout: 5 }),
  });
}

function wrap(
  orm: PgOrm,
  driver: PgDriver,
  applicationName: string,
  url: string,
  client: { listen: PgDb["listen"]; close(): Promise<void> },
): PgDb {
  const rows = async <T>(q: { execute(query: SQL): Promise<unknown> }, query: SQL) => [...((await q.execute(query)) as Iterable<T>)];
  return {
    orm,
    driver,
    applicationName,
    redactedUrl: redactDatabaseUrl(url),
    rows: <T>(query: SQL) => rows<T>(orm, query),
    tx: (fn) => orm.transaction((tx) => fn({ rows: <T>(query: SQL) => rows<T>(tx, query) })),
    listen: client.listen,
    close: client.close,
  };
}
