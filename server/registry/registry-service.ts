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
import { verifySource } from "./verify-model.js";

export interface RegistryServiceDeps {
  registry: ModelRegistry;
  /** VerifyModel's deadline per URL. */
  verifyUrlTimeoutMs: number;
  fetch?: typeof fetch;
}

/** RegistryService over a ModelRegistry: handlers throw domain errors; the one mapping (ops/rpc-errors.ts) gives their codes. */
export function createRegistryService({
  registry,
  verifyUrlTimeoutMs,
  fetch: fetchFn,
}: RegistryServiceDeps): ServiceImpl<typeof RegistryService> {
  return {
    listModels: async (req) => create(ListModelsResponseSchema, { models: await registry.list({ enabledOnly: req.enabledOnly }) }),

    getModel: async (req) => create(GetModelResponseSchema, { model: await registry.get(req.name) }),

    createModel: async (req) =>
      create(CreateModelResponseSchema, {
        model: await registry.create({ name: req.name, source: req.source, description: req.description, enabled: req.enabled }),
      }),

    updateModel: async (req) => {
      if (req.source === undefined && req.description === undefined)
        throw new ConnectError("UpdateModel needs source or description to change", Code.InvalidArgument);
      return create(UpdateModelResponseSchema, { model: await registry.update(req.name, { source: req.source, description: req.description }) });
    },

    deleteModel: async (req) => {
      await registry.delete(req.name);
      return create(DeleteModelResponseSchema);
    },

    setModelEnabled: async (req) => create(SetModelEnabledResponseSchema, { model: await registry.setEnabled(req.name, req.enabled) }),

    verifyModel: async (req) => {
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
    },
  };
}
