import { defineConfig } from "drizzle-kit";

/** The PostgreSQL dialect's migrations (`bun run db:generate:pg`); SQLite's are in drizzle.config.ts. */
export default defineConfig({
  dialect: "postgresql",
  schema: "./server/db/pg/schema.ts",
  out: "./server/db/pg/migrations",
});
