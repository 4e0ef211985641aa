import type { Command } from "commander";
import { approxSourceBytes, engineName, formatBytes, modelSourceFromJson, modelToDoc, vramText } from "../../contract/index.js";
import { RegistryService, ListModelsResponseSchema, VerifyModelResponseSchema } from "../../gen/studio/v1/registry_service_pb.js";
import { ModelSchema, type Model } from "../../gen/studio/v1/model_pb.js";
import { writeFileSync } from "node:fs";
import { studioClient, type GlobalOptions } from "../connection.js";
import { CliError, EXIT } from "../exit-codes.js";
import { readJsonFile, readModelDocs, sourceFromJson } from "../input-files.js";
import { formatTime, printJson, printValue, renderTable, type Output } from "../output.js";
import type { Runner } from "./runner.js";

function printModel(o: Output, g: GlobalOptions, m: Model) {
  if (g.json) return printJson(o, ModelSchema, m);
  o.out(
    `name:        ${m.name}\nenabled:     ${m.enabled ? "yes" : "no"}\nengine:      ${engineName(m.source?.engine ?? 0) ?? "?"}\n` +
      `gpu memory:  ${vramText(m.vram)}\n` +
      `description: ${m.description || "-"}\nupdated:     ${formatTime(m.updateTime)}\n`,
  );
  // An unreadable stored source is shown as stored, with what is wrong with it (as export writes it).
  if (!m.source) o.out(`source unreadable: ${m.unreadableSourceError}\n`);
  o.out(`source:\n${JSON.stringify(modelToDoc(m).source, null, 2).replace(/^/gm, "  ")}\n`);
}

/** `studio models ...`: the registry. */
export function registerModels(program: Command, run: Runner) {
  const models = program.command("models").description("the model registry (admin for changes)");

  models
    .command("list")
    .description("list models")
    .option("--enabled-only", "only enabled models")
    .action(
      run(async (g, o, opts: { enabledOnly?: boolean }) => {
        const res = await studioClient(RegistryService, g).listModels({ enabledOnly: opts.enabledOnly === true });
        if (g.json) return printJson(o, ListModelsResponseSchema, res);
        const rows = res.models.map((m) => [
          m.name,
          m.enabled ? "yes" : "no",
          engineName(m.source?.engine ?? 0) ?? "?",
          String(m.source?.files.length ?? 0),
          formatBytes(m.source ? approxSourceBytes(m.source) : undefined),
          m.description.length > 50 ? `${m.description.slice(0, 47)}...` : m.description,
        ]);
        o.out(renderTable(["NAME", "ENABLED", "ENGINE", "FILES", "SIZE", "DESCRIPTION"], rows, { tty: o.isTTY }));
      }),
    );

  models
    .command("get <name>")
    .description("show one model, its source as wire JSON")
    .action(
      run(async (g, o, _opts, name: string) => {
        const res = await studioClient(RegistryService, g).getModel({ name });
        printModel(o, g, res.model!);
      }),
    );

  models
    .command("add <name>")
    .description("add a model from a source file (ModelSource wire JSON; - for stdin)")
    .requiredOption("--source <file>", "the source: {\"engine\", \"files\", \"cliDefaults\"}")
    .option("--description <text>", "what the model is", "")
    .option("--disabled", "add it disabled")
    .action(
      run(async (g, o, opts: { source: string; description: string; disabled?: boolean }, name: string) => {
        const source = sourceFromJson(readJsonFile(opts.source, "--source"), opts.source);
        const res = await studioClient(RegistryService, g).createModel({
          name,
          source,
          description: opts.description,
          enabled: opts.disabled ? false : true,
        });
        if (g.json) return printJson(o, ModelSchema, res.model!);
        o.out(`added ${res.model!.name}\n`);
      }),
    );

  models
    .command("edit <name>")
    .description("replace a model's source and/or description")
    .option("--source <file>", "a new source (wire JSON; - for stdin)")
    .option("--description <text>", "a new description")
    .action(
      run(async (g, o, opts: { source?: string; description?: string }, name: string) => {
        if (opts.source === undefined && opts.description === undefined) {
          throw new CliError("models edit: give --source and/or --description", EXIT.usage);
        }
        const source = opts.source === undefined ? undefined : sourceFromJson(readJsonFile(opts.source, "--source"), opts.source);
        const res = await studioClient(RegistryService, g).updateModel({ name, source, description: opts.description });
        if (g.json) return printJson(o, ModelSchema, res.model!);
        o.out(`updated ${res.model!.name}\n`);
      }),
    );

  for (const [verb, enabled] of [
    ["enable", true],
    ["disable", false],
  ] as const) {
    models
      .command(`${verb} <name>`)
      .description(`${verb} a model (disabled models take no new jobs)`)
      .action(
        run(async (g, o, _opts, name: string) => {
          const res = await studioClient(RegistryService, g).setModelEnabled({ name, enabled });
          if (g.json) return printJson(o, ModelSchema, res.model!);
          o.out(`${verb}d ${res.model!.name}\n`);
        }),
      );
  }

  models
    .command("delete <name>")
    .description("delete a model")
    .action(
      run(async (g, o, _opts, name: string) => {
        await studioClient(RegistryService, g).deleteModel({ name });
        if (g.json) return printValue(o, { deleted: name });
        o.out(`deleted ${name}\n`);
      }),
    );

  models
    .command("verify [name]")
    .description("check that every file URL of a model (or of --source) is reachable; exit 1 when one is not")
    .option("--source <file>", "verify a source file instead of a saved model")
    .action(
      run(async (g, o, opts: { source?: string }, name?: string) => {
        if ((name === undefined) === (opts.source === undefined)) {
          throw new CliError("models verify: give a model name or --source <file>, not both", EXIT.usage);
        }
        const target =
          name !== undefined
            ? { case: "name" as const, value: name }
            : { case: "source" as const, value: sourceFromJson(readJsonFile(opts.source!, "--source"), opts.source!) };
        const res = await studioClient(RegistryService, g).verifyModel({ target });
        if (g.json) printJson(o, VerifyModelResponseSchema, res);
        else {
          const rows = res.files.map((f) => [
            f.filename,
            f.reachable ? "ok" : "UNREACHABLE",
            String(f.httpStatus || "-"),
            formatBytes(f.sizeBytes),
            formatBytes(f.approxBytes),
            f.sizeMatches ? "" : "size differs",
            f.error,
          ]);
          o.out(renderTable(["FILE", "REACHABLE", "HTTP", "SIZE", "EXPECTED", "NOTE", "ERROR"], rows, { tty: o.isTTY }));
          o.out(res.ok ? "all files reachable\n" : "some files are not reachable\n");
        }
        return res.ok ? EXIT.ok : EXIT.failed;
      }),
    );

  models
    .command("import <file>")
    .description('create models from a file: {"name","description","enabled","source"} or an array of them')
    .option("--replace", "update models that already exist instead of failing")
    .action(
      run(async (g, o, opts: { replace?: boolean }, file: string) => {
        const entries = readModelDocs(file);
        const client = studioClient(RegistryService, g);
        const existing = new Set((await client.listModels({})).models.map((m) => m.name));
        const clashes = entries.filter((e) => existing.has(e.name)).map((e) => e.name);
        if (clashes.length > 0 && !opts.replace) {
          throw new CliError(`already in the registry: ${clashes.join(", ")}; nothing imported. Pass --replace to update them`, EXIT.failed);
        }
        const done: Array<{ name: string; action: string }> = [];
        for (const e of entries) {
          if (existing.has(e.name)) {
            await client.updateModel({ name: e.name, source: modelSourceFromJson(e.source), description: e.description });
            await client.setModelEnabled({ name: e.name, enabled: e.enabled });
            done.push({ name: e.name, action: "updated" });
          } else {
            await client.createModel({ name: e.name, source: modelSourceFromJson(e.source), description: e.description, enabled: e.enabled });
            done.push({ name: e.name, action: "created" });
          }
        }
        if (g.json) return printValue(o, done);
        for (const d of done) o.out(`${d.action} ${d.name}\n`);
      }),
    );

  models
    .command("export [names...]")
    .description("write models as an import file (every model unless names are given)")
    .option("-o, --out <file>", "write to a file instead of stdout")
    .action(
      run(async (g, o, opts: { out?: string }, names: string[]) => {
        const client = studioClient(RegistryService, g);
        const list =
          names.length > 0
            ? await Promise.all(names.map(async (name) => (await client.getModel({ name })).model!))
            : (await client.listModels({})).models;
        const text = `${JSON.stringify(list.map(modelToDoc), null, 2)}\n`;
        if (opts.out) {
          writeFileSync(opts.out, text);
          if (!g.json) o.err(`wrote ${list.length} model(s) to ${opts.out}\n`);
        } else o.out(text);
      }),
    );
}
