import { afterAll } from "bun:test";
import { destroySharedTestPg } from "./helpers/test-pg.js";

// Registered once for the whole run (bunfig.toml preloads this file): after the last test
// file, the PostgreSQL cluster the suites shared is stopped and its dir removed.
afterAll(() => destroySharedTestPg());
