import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Locator, Page } from "playwright-core";
import type { Client } from "@connectrpc/connect";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Interceptor } from "@connectrpc/connect";
import { SimWorker } from "../dispatch/sim-worker.js";
import { sqliteOf, startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { launchBrowser, screenshot, type TestBrowser } from "./browser.js";
import { startSlowSyntheticWorker, type WorkerProcess } from "./worker-process.js";

const ADMIN = "web-admin-page-test-admin-token-0123456789";
const WORKER_NAME = "web-test-worker";
const PHONE = { width: 390, height: 844 };
const LAPTOP = { width: 1280, height: 800 };

const badModel = {
  name: "bad files!",
  source: {
    engine: "sd-cpp",
    files: [{ role: "model", url: "http://127.0.0.1:9/m.gguf", filename: "../escape.gguf" }],
  },
};
const goodModel = {
  name: "web-synth",
  description: "synthetic 64x64, 30 steps",
  enabled: true,
  source: { engine: "synthetic", files: [], cliDefaults: { steps: 30, width: 64, height: 64 } },
};

/** The value of the job page's progress bar, or -1 while it has none. */
function progressValue(page: Page): Promise<number> {
  return page.evaluate(() => {
    const bar = document.querySelector<HTMLProgressElement>(".job-head progress");
    return bar && bar.max > 1 ? bar.value : -1;
  });
}

/** The status badge of the job page. */
function jobStatus(page: Page): Locator {
  return page.locator(".job-head [data-status]");
}

describe("the web admin page in headless Chromium", () => {
  let t: TestStudio;
  let worker: WorkerProcess;
  let b: TestBrowser;
  let page: Page;
  let firstJobUrl = "";
  let admin: Client<typeof JobService>;
  let files: ReturnType<typeof Bun.serve>;

  beforeAll(async () => {
    t = await startTestStudio({ adminToken: ADMIN });
    // A model file the studio's VerifyModel can reach: 4096 bytes on a local server.
    files = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) =>
        new URL(req.url).pathname === "/tiny.gguf"
          ? new Response(new Uint8Array(4096))
          : new Response("no", { status: 404 }),
    });
    const adminTransport = t.connectTransport({ headers: { authorization: `Bearer ${ADMIN}` } });
    admin = t.client(JobService, adminTransport);
    const { secret } = await t
      .client(TokenService, adminTransport)
      .createToken({ name: "web worker", role: TokenRole.WORKER });
    worker = startSlowSyntheticWorker({ server: t.url, token: secret, name: WORKER_NAME, stepMs: 100 });
    b = await launchBrowser(LAPTOP);
    page = b.page;
    page.setDefaultTimeout(15_000);
    // The worker logs "connected to the studio" on welcome, which the studio sends once the worker is
    // in its registry: from then on ListWorkers (which the page's Workers view reads) shows it.
    await worker.waitForLog((l) => l.msg === "connected to the studio").catch((err: unknown) => {
      throw new Error(`worker did not connect (${(err as Error).message}):\n${worker.output()}`);
    });
    const { workers } = await t.client(WorkerService, adminTransport).listWorkers({});
    expect(workers.map((w) => w.name)).toEqual([WORKER_NAME]);
  }, 30_000);

  afterAll(async () => {
    await b?.close();
    await worker?.stop();
    await t?.stop();
    await files?.stop(true);
  }, 30_000);

  /** Runs a step; when it fails, the error also carries what the studio and the worker saw. */
  async function withDiagnosis(step: () => Promise<void>) {
    try {
      await step();
    } catch (err) {
      const jobs = (await admin.listJobs({})).jobs.map(
        (j) =>
          `${j.id} status=${j.status} attempts=${j.attempts} worker=${j.workerName} step=${j.progress?.step ?? "-"} error=${j.error}`,
      );
      throw new Error(`${(err as Error).message}\njobs:\n${jobs.join("\n")}\nworker output:\n${worker.output()}`);
    }
  }

  test("asks for a token, refuses a wrong one beside the field, and signs in with the right one", async () => {
    await page.goto(t.url);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    // A first visit explains itself in a sentence, not with the error of whichever call came first.
    const notice = page.locator("main .notice");
    await expectText(notice, /This studio needs a token\. Sign in with an admin or client token/);
    expect(await notice.innerText()).not.toMatch(/unauthenticated|Watching|Listing/i);
    await screenshot(page, "login-first-visit-laptop");
    const token = page.getByLabel("Token");
    await token.fill("not-a-real-token-at-all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectText(page.locator(`#${await token.getAttribute("id")}-error`), /refused this token/);
    expect(await token.getAttribute("aria-invalid")).toBe("true");
    await screenshot(page, "login-laptop");
    await token.fill(ADMIN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Jobs" }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("studio.token"))).toBe(ADMIN);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
  }, 30_000);

  test("shows a bad file name's error beside the field, then adds a model from JSON", async () => {
    await nav(page, "Models").click();
    await page.getByRole("link", { name: "New model" }).click();
    const json = page.getByLabel("Model JSON");
    await json.fill(JSON.stringify(badModel));
    const filename = page.getByLabel("File name");
    await expectText(page.locator(`#${await filename.getAttribute("id")}-error`), /must be a bare file name/);
    expect(await filename.getAttribute("aria-invalid")).toBe("true");
    const name = page.getByLabel("Name", { exact: true });
    await expectText(page.locator(`#${await name.getAttribute("id")}-error`), /must start with a letter or digit/);
    await page.getByRole("button", { name: "Create model" }).click();
    await expectText(page.locator("#status"), /Not saved: 2 problems/);
    await screenshot(page, "model-form-laptop");

    await json.fill(JSON.stringify(goodModel));
    expect(await filename.count()).toBe(0);
    await page.getByRole("button", { name: "Create model" }).click();
    const row = page.locator('tr[data-model="web-synth"]');
    await row.waitFor();
    await expectText(row, /synthetic/);
    await screenshot(page, "models-laptop");

    // The server's refusal is shown, not swallowed.
    await page.getByRole("link", { name: "New model" }).click();
    await page.getByLabel("Model JSON").fill(JSON.stringify(goodModel));
    await page.getByRole("button", { name: "Create model" }).click();
    await expectText(page.locator(".server-error"), /The studio refused: already exists: .*web-synth/);
    await nav(page, "Models").click();
  }, 30_000);

  test("verifies a model's files, disables and enables it, and deletes it after confirmation", async () => {
    const doc = {
      name: "verify-me",
      source: {
        engine: "llama-cpp",
        files: [{ role: "model", url: `${files.url}tiny.gguf`, filename: "tiny.gguf", approxBytes: 4096 }],
      },
    };
    await page.getByRole("link", { name: "New model" }).click();
    await page.getByLabel("Model JSON").fill(JSON.stringify(doc));
    await page.getByRole("button", { name: "Verify files" }).click();
    await expectText(
      page.locator(".model-edit .verify"),
      /tiny\.gguf: reachable \(HTTP 200\), size 4\.0 KiB vs approx 4\.0 KiB/,
    );
    await page.getByRole("button", { name: "Create model" }).click();
    const row = page.locator('tr[data-model="verify-me"]');
    await row.waitFor();

    await page.getByRole("button", { name: "Verify verify-me" }).click();
    await expectText(row.locator(".verify"), /Every file is reachable/);
    await page.getByRole("button", { name: "Disable verify-me" }).click();
    await expectText(row.locator(".badge"), /^disabled$/);
    await page.getByRole("button", { name: "Enable verify-me" }).click();
    await expectText(row.locator(".badge"), /^enabled$/);

    await page.getByRole("button", { name: "Delete verify-me" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Keep" }).click();
    expect(await row.count()).toBe(1);
    await page.getByRole("button", { name: "Delete verify-me" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete verify-me" }).click();
    await row.waitFor({ state: "detached" });
    await expectText(page.locator("#status"), /verify-me deleted/);
  }, 30_000);

  test("exports a model's wire JSON and imports it back under another name", async () => {
    await nav(page, "Models").click();
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export web-synth" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe("web-synth.model.json");
    const exported = JSON.parse(await Bun.file((await download.path())!).text());
    expect(exported).toEqual({ ...goodModel, source: { ...goodModel.source } });

    await page.getByLabel("Import JSON").setInputFiles({
      name: "copy.json",
      mimeType: "application/json",
      buffer: Buffer.from(JSON.stringify([{ ...exported, name: "web-synth-copy", enabled: false }])),
    });
    await expectText(page.locator("#status"), /Imported 1 model: web-synth-copy/);
    await expectText(page.locator('tr[data-model="web-synth-copy"] .badge'), /^disabled$/);
  }, 30_000);

  test("opens a model whose stored source is unreadable as stored, refuses to save it, and saves the admin's fix", async () => {
    const stored = '{"engine":"sd-cpp","files":[{"role":"diffusion-model","url":"ftp://files.example/z.gguf","filename":"z.gguf"}]}';
    const rowSource = () =>
      (sqliteOf(t.studio).query("SELECT source FROM studioModels WHERE name = 'web-stored-bad'").get() as { source: string }).source;
    sqliteOf(t.studio).run(
      "INSERT INTO studioModels (name, enabled, engine, source, description, createdAt, updatedAt) VALUES ('web-stored-bad', 1, 'sd-cpp', ?, '', 1, 1)",
      [stored],
    );
    // The list is read again when the view opens (the row was written behind the page's back).
    await nav(page, "Jobs").click();
    await nav(page, "Models").click();
    await page.getByRole("link", { name: "Edit web-stored-bad" }).click();
    const notice = page.locator(".unreadable-source");
    await expectText(notice, /cannot be read: files\[0\]\.url: /);
    expect(await notice.locator("pre").textContent()).toBe(stored);
    const json = page.getByLabel("Model JSON");
    // As stored (the form only adds the empty defaults object it edits).
    expect(JSON.parse(await json.inputValue()).source).toEqual({ ...JSON.parse(stored), cliDefaults: {} });
    expect(await page.getByLabel("Engine").inputValue()).toBe("sd-cpp");
    await page.getByRole("button", { name: "Save model" }).click();
    await expectText(page.locator("#status"), /Not saved: 1 problem/);
    expect(rowSource()).toBe(stored);

    await json.fill(JSON.stringify({ name: "web-stored-bad", source: JSON.parse(stored.replace("ftp://", "http://")) }));
    await page.getByRole("button", { name: "Save model" }).click();
    await page.locator('tr[data-model="web-stored-bad"]').waitFor();
    expect(JSON.parse(rowSource()).files[0].url).toBe("http://files.example/z.gguf");
  }, 30_000);

  test("creates a job and watches its progress bar move until it succeeds, without reloading", async () => {
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
    await nav(page, "Jobs").click();
    await page.getByRole("link", { name: "New job" }).click();
    // The form's own Model field: until the hashchange renders the form, the Jobs list's Model
    // filter is on the page too, and choosing web-synth there filters the list instead (CI once).
    const form = page.getByRole("form", { name: "New job" });
    await form.getByLabel("Model", { exact: true }).selectOption("web-synth");
    expect(await form.getByLabel("Steps").inputValue()).toBe("30"); // overrides start at the model's defaults
    await page.getByLabel("Prompt", { exact: true }).fill("a lighthouse at dusk");
    await page.getByRole("button", { name: "Create job" }).click();
    await page.getByRole("heading", { name: /^Job / }).waitFor();
    firstJobUrl = page.url();

    await page.waitForFunction(() => {
      const bar = document.querySelector<HTMLProgressElement>(".job-head progress");
      return !!bar && bar.max === 30 && bar.value > 0 && bar.value < 30;
    });
    const first = await progressValue(page);
    await page.waitForFunction((v) => {
      const bar = document.querySelector<HTMLProgressElement>(".job-head progress");
      return !bar || bar.value > v;
    }, first);
    await jobStatus(page).and(page.locator('[data-status="succeeded"]')).waitFor();

    await screenshot(page, "job-laptop");
    // Either the image decodes or the page says it could not (a broken PNG from the worker).
    await page.waitForFunction(() => {
      const i = document.querySelector<HTMLImageElement>("img[data-output]");
      return (!!i && i.complete && i.naturalWidth > 0) || !!document.querySelector(".outputs [role=alert]");
    });
    expect(await page.locator(".outputs [role=alert]").allTextContents()).toEqual([]);
    const img = page.locator("img[data-output]");
    expect(await img.evaluate((i: HTMLImageElement) => [i.naturalWidth, i.naturalHeight])).toEqual([64, 64]);
    const link = page.getByRole("link", { name: /Download output 0 \(image\/png/ });
    expect(await link.getAttribute("href")).toMatch(/^\/jobs\/[^/]+\/outputs\/0$/);
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
  }, 30_000);

  test("shows a text output as text", async () => {
    await page.goto(`${t.url}/#/jobs/new?model=web-synth`);
    await page.getByLabel("Kind").selectOption("text");
    await page.getByLabel("Prompt", { exact: true }).fill("say something");
    await page.getByLabel("Max tokens").fill("5");
    await page.getByRole("button", { name: "Create job" }).click();
    await page.getByRole("heading", { name: /^Job / }).waitFor();
    await jobStatus(page).and(page.locator('[data-status="succeeded"]')).waitFor();
    const text = page.locator("pre[data-output]");
    await text.waitFor();
    expect((await text.textContent())!.trim().split(/\s+/)).toHaveLength(5);

    // Promote: the same task under another model, on a new job page that links back.
    const original = new URL(page.url()).hash.split("/")[2]!;
    await page.getByLabel("Promote to model").selectOption("synthetic");
    await page.getByRole("button", { name: "Promote" }).click();
    await page.waitForFunction((id) => !location.hash.endsWith(id), original);
    await page.getByRole("link", { name: original }).waitFor();
    await jobStatus(page).and(page.locator('[data-status="succeeded"]')).waitFor();
  }, 30_000);

  test("streams a text job's output on its page while it runs", async () => {
    await page.goto(`${t.url}/#/jobs/new?model=web-synth`);
    await page.getByLabel("Kind").selectOption("text");
    await page.getByLabel("Prompt", { exact: true }).fill("stream it to me");
    await page.getByRole("button", { name: "Create job" }).click();
    await page.getByRole("heading", { name: /^Job / }).waitFor();
    // A word a step (100 ms): some words show while the job still runs.
    await page.waitForFunction(() => {
      const pre = document.querySelector("pre[data-streamed-text]");
      const status = document.querySelector(".job-head [data-status]")?.getAttribute("data-status");
      return status === "running" && pre !== null && !pre.closest("section")!.hidden && pre.textContent!.trim().split(/\s+/).length >= 2;
    });
    expect(await page.getByRole("heading", { name: /^Output so far \(\d+ tokens\)$/ }).isVisible()).toBe(true);
    await jobStatus(page).and(page.locator('[data-status="succeeded"]')).waitFor();
    const text = page.locator("pre[data-output]");
    await text.waitFor();
    expect((await text.textContent())!.trim().split(/\s+/)).toHaveLength(12);
    // The outputs replace what was streamed.
    expect(await page.locator("section.streamed").isHidden()).toBe(true);
  }, 30_000);

  test("cancels a running job after confirmation and retries it", async () => {
    await withDiagnosis(async () => {
      await page.goto(`${t.url}/#/jobs/new?model=web-synth`);
      await page.getByLabel("Prompt", { exact: true }).fill("a long one");
      await page.getByLabel("Steps").fill("200");
      await page.getByRole("button", { name: "Create job" }).click();
      await page.getByRole("heading", { name: /^Job / }).waitFor();
      await page.waitForFunction(
        () => (document.querySelector<HTMLProgressElement>(".job-head progress")?.value ?? 0) > 0,
      );

      await page.getByRole("button", { name: "Cancel job" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByRole("button", { name: "Cancel job" }).click();
      await jobStatus(page).and(page.locator('[data-status="cancelled"]')).waitFor();
      // The studio frees the slot at cancel while the worker is still stopping the engine; an
      // offer in that gap is declined ("no free slot") and dispatch then skips the job on this
      // worker for 30 s. Retry once the worker says the cancelled run is over.
      const jobId = new URL(page.url()).hash.split("/")[2]!;
      await worker.waitForLog((l) => l.msg === "job finished" && l.jobId === jobId && l.outcome === "cancelled");

      await page.getByRole("button", { name: "Retry job" }).click();
      await page.waitForFunction(() => {
        const s = document.querySelector(".job-head [data-status]")?.getAttribute("data-status");
        return s === "queued" || s === "offered" || s === "running";
      });
      await page.waitForFunction(
        () => (document.querySelector<HTMLProgressElement>(".job-head progress")?.value ?? 0) > 0,
      );
      await expectText(page.locator("ol.timeline"), /seen cancelled/);
    });
  }, 30_000);

  test("lists jobs live with filters, and shows the worker", async () => {
    await withDiagnosis(async () => {
      await nav(page, "Jobs").click();
      // A second job waits behind the running one, as on a busy studio.
      await admin.createJob({
        model: "web-synth",
        task: { kind: { case: "image", value: { prompt: "next in line" } } },
      });
      await page.locator('tr[data-job] [data-status="queued"]').waitFor();
      // The queued job says why it waits: the one worker is busy.
      await expectText(page.locator("tr[data-job] .wait"), /^the 1 worker that runs synthetic is busy/);
      await page.waitForFunction(
        () => (document.querySelector<HTMLProgressElement>("tbody progress")?.value ?? 0) >= 70,
      );
      await screenshot(page, "jobs-laptop");
      await page.getByLabel("Status").selectOption("succeeded");
      await page.waitForFunction(() => {
        const rows = [...document.querySelectorAll("tr[data-job] [data-status]")];
        return rows.length > 0 && rows.every((r) => r.getAttribute("data-status") === "succeeded");
      });
      await page.getByLabel("Status").selectOption("");

      await nav(page, "Workers").click();
      const row = page.locator(`tr[data-worker="${WORKER_NAME}"]`);
      await row.waitFor();
      await expectText(row, /synthetic/);
      await expectText(row, /1 of 1 in use/);
      await expectText(row, /web-test/);
      await screenshot(page, "workers-laptop");
    });
  }, 30_000);

  test("the Workers page is live: a worker that connects appears and one that leaves goes, with no Refresh button", async () => {
    await nav(page, "Workers").click();
    await page.locator(`tr[data-worker="${WORKER_NAME}"]`).waitFor();
    expect(await page.getByRole("button", { name: /refresh/i }).count()).toBe(0);
    await expectText(page.locator(".feed"), /^Live/);
    const adminTransport = t.connectTransport({ headers: { authorization: `Bearer ${ADMIN}` } });
    const { secret } = await t.client(TokenService, adminTransport).createToken({ name: "web worker 2", role: TokenRole.WORKER });
    const second = startSlowSyntheticWorker({ server: t.url, token: secret, name: "web-second-worker", stepMs: 100 });
    try {
      await page.locator('tr[data-worker="web-second-worker"]').waitFor();
      await expectText(page.locator("main p.counts"), /^2 workers connected/);
    } finally {
      await second.stop();
    }
    await page.locator('tr[data-worker="web-second-worker"]').waitFor({ state: "detached" });
    await expectText(page.locator("main p.counts"), /^1 worker connected/);
  }, 30_000);

  test("the Jobs list shows prompt and error, counts per status, and retries the failed jobs selected", async () => {
    const adminTransport = t.connectTransport({ headers: { authorization: `Bearer ${ADMIN}` } });
    // A text worker (a real session over HTTP/2) that fails each job once with an engine's error, then completes it.
    const { secret } = await t.client(TokenService, adminTransport).createToken({ name: "web text worker", role: TokenRole.WORKER });
    const auth: Interceptor = (next) => async (req) => {
      req.header.set("authorization", `Bearer ${secret}`);
      return next(req);
    };
    const textWorker = await SimWorker.connect(createGrpcTransport({ baseUrl: t.url, interceptors: [auth] }), {
      name: "web-text-worker",
      engines: [ModelEngine.LLAMA_CPP],
    });
    try {
      await withDiagnosis(async () => {
        await t.client(RegistryService, adminTransport).createModel({
          name: "web-text",
          enabled: true,
          source: {
            engine: ModelEngine.LLAMA_CPP,
            files: [{ role: ModelFileRole.MODEL, url: `http://127.0.0.1:${files.port}/tiny.gguf`, filename: "tiny.gguf" }],
          },
        });
        const ids: string[] = [];
        for (const prompt of ["a harbour at night under a sky full of lanterns drifting slowly upwards", "a second try"])
          ids.push((await admin.createJob({ model: "web-text", task: { kind: { case: "text", value: { prompt } } }, maxAttempts: 1 })).job!.id);
        for (let i = 0; i < ids.length; i++) {
          const offer = await textWorker.nextOffer();
          await textWorker.fail(offer, "CUDA error 2: out of memory while loading tiny.gguf (llama-server exited with 1)");
        }
        await nav(page, "Jobs").click();
        for (const id of ids) await page.locator(`tr[data-job="${id}"] [data-status="failed"]`).waitFor();
        const row = page.locator(`tr[data-job="${ids[0]}"]`);
        await expectText(row.locator("td.prompt"), /^a harbour at night under a sky full of…$/);
        expect(await row.locator("td.prompt").getAttribute("title")).toContain("drifting slowly upwards");
        await expectText(row.locator("td.error-text"), /^CUDA error 2: out of memory while loading tiny\.…$/);
        expect(await row.locator("td.error-text").getAttribute("title")).toContain("llama-server exited with 1");
        const failedCount = Number(await page.locator('[data-count="failed"] strong').innerText());
        expect(failedCount).toBeGreaterThanOrEqual(2);
        await screenshot(page, "jobs-failed-laptop");

        // Both failed jobs retried at once; this time the worker completes them.
        for (const id of ids) await page.getByLabel(`Select job ${id}`).check();
        await page.getByRole("button", { name: "Retry selected (2)" }).click();
        await expectText(page.locator("#status"), /Retried 2 jobs\./);
        for (let i = 0; i < ids.length; i++) {
          const offer = await textWorker.nextOffer();
          textWorker.upload(offer, 0, new TextEncoder().encode('{"text":"ok","finishReason":"stop"}'), { mimeType: "application/json" });
          expect(await textWorker.complete(offer)).toMatchObject({ ok: true });
        }
        for (const id of ids) await page.locator(`tr[data-job="${id}"] [data-status="succeeded"]`).waitFor();
        await expectText(page.locator('[data-count="failed"] strong'), new RegExp(`^${failedCount - 2}$`));
        await page.locator('[data-count="succeeded"]').click();
        await page.waitForFunction(() => {
          const rows = [...document.querySelectorAll("tr[data-job] [data-status]")];
          return rows.length > 0 && rows.every((r) => r.getAttribute("data-status") === "succeeded");
        });
        await page.locator('[data-count="all"]').click();
      });
    } finally {
      await textWorker.close();
    }
  }, 45_000);

  test("a client token sees what a client may do: no registry buttons, a read-only model page", async () => {
    const adminTransport = t.connectTransport({ headers: { authorization: `Bearer ${ADMIN}` } });
    const { secret } = await t.client(TokenService, adminTransport).createToken({ name: "web client", role: TokenRole.CLIENT });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").fill(secret);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectText(page.locator("#session"), /web client \(client\)/);
    await nav(page, "Models").click();
    await page.locator('tr[data-model="synthetic"]').waitFor();
    for (const name of ["New model", "Import JSON"]) expect(await page.getByText(name, { exact: true }).count()).toBe(0);
    for (const name of [/^Edit /, /^Disable /, /^Enable /, /^Delete /, /^Verify /]) expect(await page.getByRole("button", { name }).or(page.getByRole("link", { name })).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Export synthetic" }).count()).toBe(1);
    await screenshot(page, "models-client-laptop");
    await page.getByRole("link", { name: "View synthetic" }).click();
    await expectText(page.locator("main"), /Read only: changing the registry needs an admin token/);
    // Jobs are a client's to run: New job is there.
    await nav(page, "Jobs").click();
    await page.getByRole("link", { name: "New job" }).waitFor();
    // Back to admin for the rest.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").fill(ADMIN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectText(page.locator("#session"), /\(admin\)/);
    expect(b.pageErrors).toEqual([]);
  }, 30_000);

  test("fits a phone's width", async () => {
    await page.setViewportSize(PHONE);
    for (const [hash, name] of [
      ["#/jobs", "jobs-phone"],
      [new URL(firstJobUrl).hash, "job-phone"],
      ["#/models", "models-phone"],
      ["#/workers", "workers-phone"],
    ] as const) {
      await page.goto(`${t.url}/${hash}`);
      await page.locator("main table, main .job-head").first().waitFor();
      await page.locator("main :is(tbody tr, .job-head [data-status])").first().waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${name} scrolls sideways`).toBeLessThanOrEqual(0);
      await screenshot(page, name);
    }
    await page.setViewportSize(LAPTOP);
    expect(b.pageErrors).toEqual([]);
  });
});

/** A link of the top navigation (other links may share its name). */
function nav(page: Page, name: string): Locator {
  return page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name, exact: true });
}

async function expectText(locator: Locator, pattern: RegExp) {
  await locator.filter({ hasText: pattern }).first().waitFor();
}

describe("an open studio (loopback, no tokens)", () => {
  test("needs no sign-in", async () => {
    const t = await startTestStudio();
    const b = await launchBrowser(LAPTOP);
    try {
      await b.page.goto(`${t.url}/#/models`);
      await b.page.locator('tr[data-model="synthetic"]').waitFor({ timeout: 15_000 });
      expect(await b.page.getByRole("link", { name: "Sign in" }).count()).toBe(1);
      expect(b.pageErrors).toEqual([]);
    } finally {
      await b.close();
      await t.stop();
    }
  }, 30_000);
});
