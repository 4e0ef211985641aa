import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { formatIssues } from "../../contract/issues.js";
import { modelSourceFromJson, type ModelSourceJson } from "../../contract/model-source.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { checkModelDoc, modelToDoc, parseModelDocs } from "../../contract/model-doc.js";
import { sqliteOf, startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/** Bad documents and the one rule each breaks; the page must say what the server says. */
const BAD: Array<{ what: string; doc: Record<string, unknown> }> = [
  { what: "a model name with a space", doc: { name: "bad name!", source: { engine: "synthetic", files: [] } } },
  {
    what: "a path as a file name, an ftp URL and a width off the grid",
    doc: {
      name: "three-problems",
      source: {
        engine: "sd-cpp",
        files: [{ role: "model", url: "ftp://host/m.gguf", filename: "../m.gguf" }],
        cliDefaults: { width: 100 },
      },
    },
  },
  {
    what: "a duplicated file name",
    doc: {
      name: "dupes",
      source: {
        engine: "sd-cpp",
        files: [
          { role: "diffusion-model", url: "http://h/a", filename: "a.gguf" },
          { role: "vae", url: "http://h/b", filename: "a.gguf" },
        ],
      },
    },
  },
  { what: "llama-cpp without a model file", doc: { name: "no-model", source: { engine: "llama-cpp", files: [] } } },
  { what: "a description over the limit", doc: { name: "wordy", description: "x".repeat(4097), source: { engine: "synthetic", files: [] } } },
];

describe("the model document checks (web page and CLI)", () => {
  let t: TestStudio;
  beforeAll(async () => {
    t = await startTestStudio();
  });
  afterAll(async () => {
    await t?.stop();
  });

  for (const { what, doc } of BAD) {
    test(`reports ${what} exactly as the registry does`, async () => {
      const checked = checkModelDoc(doc);
      expect(checked.ok).toBe(false);
      if (checked.ok) return;
      // Send the same document past the page's checks, the way another client could.
      const source = doc.source as ModelSourceJson;
      let err: unknown;
      try {
        await t.client(RegistryService).createModel({
          name: doc.name as string,
          description: doc.description as string | undefined,
          source: modelSourceFromJson({ ...source, cliDefaults: source.cliDefaults ?? {} }),
        });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toBe(formatIssues(checked.issues));
    });
  }

  test("accepts a good document and fills its defaults", () => {
    const checked = checkModelDoc({ name: "fine", source: { engine: "synthetic", files: [] } });
    expect(checked).toEqual({
      ok: true,
      doc: { name: "fine", description: "", enabled: true, source: { engine: "synthetic", files: [], cliDefaults: {} } },
    });
  });

  test("reads an export file of several documents and names the entry of each problem", () => {
    const text = JSON.stringify([
      { name: "a", source: { engine: "synthetic", files: [] } },
      { name: "b", source: { engine: "synthetic", files: [], cliDefaults: { steps: 0 } }, extra: 1 },
    ]);
    const { docs, issues } = parseModelDocs(text);
    expect(docs.map((d) => d.name)).toEqual(["a"]);
    expect(issues.map((i) => i.path)).toEqual(["[1]", "[1].source.cliDefaults.steps"]);
    expect(parseModelDocs("{not json").issues[0]!.message).toMatch(/^not valid JSON/);
    expect(parseModelDocs(JSON.stringify({ name: "x" })).issues).toEqual([{ path: "source", message: "is required" }]);
  });

  test("a name that appears twice in one file is a problem before anything is written", () => {
    const doc = { name: "twice", source: { engine: "synthetic", files: [] } };
    expect(parseModelDocs(JSON.stringify([doc, { name: "once", source: doc.source }, doc])).issues).toEqual([
      { path: "[2].name", message: '"twice" appears twice (also [0])' },
    ]);
  });

  test("an unreadable stored source is carried as stored, never replaced by a stand-in", async () => {
    const stored = '{"engine":"sd-cpp","files":[{"role":"model","url":"ftp://h/m.gguf","filename":"m.gguf"}]}';
    sqliteOf(t.studio).run(
      "INSERT INTO studioModels (name, enabled, engine, source, description, createdAt, updatedAt) VALUES (?, 1, 'sd-cpp', ?, '', 1, 1)",
      ["stored-bad", stored],
    );
    sqliteOf(t.studio).run(
      "INSERT INTO studioModels (name, enabled, engine, source, description, createdAt, updatedAt) VALUES (?, 1, 'sd-cpp', ?, '', 1, 1)",
      ["stored-garbled", "{engine: sd-cpp"],
    );
    const registry = t.client(RegistryService);
    const { model: bad } = await registry.getModel({ name: "stored-bad" });
    expect(bad!.source).toBeUndefined();
    expect(bad!.unreadableSourceText).toBe(stored);
    expect(bad!.unreadableSourceError).toContain("files[0].url");
    const doc = modelToDoc(bad!);
    expect(doc.source).toEqual(JSON.parse(stored));
    const checked = checkModelDoc(doc);
    expect(checked.ok).toBe(false);

    const { model: garbled } = await registry.getModel({ name: "stored-garbled" });
    expect(garbled!.unreadableSourceError).toMatch(/^not valid JSON/);
    expect(modelToDoc(garbled!).source).toBe("{engine: sd-cpp");
    expect(checkModelDoc(modelToDoc(garbled!)).ok).toBe(false);
  });
});
