import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { validateModelSource } from "../../contract/model-source.js";
import {
  CreateModelResponseSchema,
  DeleteModelResponseSchema,
  GetModelResponseSchema,
  ListModelsResponseSchema,
  RegistryService,
  SetModelEnabledResponseSchema,
  UpdateModelResponseSchema,
} from "../../gen/studio/v1/registry_service_pb.js";
import { checkModelName, type ModelRegistry } from "./model-registry.js";
import { modelSourceInvalid } from "./registry-errors.js";
import { atRegistryEdge } from "./registry-rpc-errors.js";
import { verifySource } from "./verify-model.js";

export interface RegistryServiceDeps {
  registry: ModelRegistry;
  /** VerifyModel's deadline per URL. */
  verifyUrlTimeoutMs: number;
  fetch?: typeof fetch;
}

/** RegistryService over a ModelRegistry: every handler maps domain errors to Connect codes at the edge. */
export function createRegistryService({
  registry,
  verifyUrlTimeoutMs,
  fetch: fetchFn,
}: RegistryServiceDeps): ServiceImpl<typeof RegistryService> {
  return {
    listModels: (req) =>
      atRegistryEdge(async () => create(ListModelsResponseSchema, { models: await registry.list({ enabledOnly: req.enabledOnly }) })),

    getModel: (req) => atRegistryEdge(async () => create(GetModelResponseSchema, { model: await registry.get(req.name) })),

    createModel: (req) =>
      atRegistryEdge(async () =>
        create(CreateModelResponseSchema, {
          model: await registry.create({
            name: req.name,
            source: req.source,
            description: req.description,
            enabled: req.enabled,
          }),
        }),
      ),

    updateModel: (req) =>
      atRegistryEdge(async () => {
        if (req.source === undefined && req.description === undefined)
          throw new ConnectError("UpdateModel needs source or description to change", Code.InvalidArgument);
        return create(UpdateModelResponseSchema, {
          model: await registry.update(req.name, { source: req.source, description: req.description }),
        });
      }),

    deleteModel: (req) =>
      atRegistryEdge(async () => {
        await registry.delete(req.name);
        return create(DeleteModelResponseSchema);
      }),

    setModelEnabled: (req) =>
      atRegistryEdge(async () => create(SetModelEnabledResponseSchema, { model: await registry.setEnabled(req.name, req.enabled) })),

    verifyModel: (req) =>
      atRegistryEdge(async () => {
        let source;
        if (req.target.case === "name") {
          checkModelName(req.target.value);
          source = (await registry.get(req.target.value)).source;
          if (!source) throw modelSourceInvalid(req.target.value);
        } else if (req.target.case === "source") {
          source = validateModelSource(req.target.value, "source");
        } else {
          throw new ConnectError("target: set name or source", Code.InvalidArgument);
        }
        return verifySource(source, { timeoutMs: verifyUrlTimeoutMs, fetch: fetchFn });
      }),
  };
}
