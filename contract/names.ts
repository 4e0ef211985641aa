import { ModelEngine, ModelFileRole } from "../gen/studio/v1/model_pb.js";

/** The engine names of the ModelSource wire JSON, in the design note's spelling. */
export const ENGINE_NAMES = ["sd-cpp", "llama-cpp", "synthetic"] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

/** The file role names of the ModelSource wire JSON. */
export const ROLE_NAMES = [
  "diffusion-model",
  "text-encoder",
  "vae",
  "lora",
  "model",
  "clip-l",
  "clip-g",
  "t5xxl",
  "llm-vision",
  "taesd",
  "high-noise-diffusion-model",
] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

const engineByName: Record<EngineName, ModelEngine> = {
  "sd-cpp": ModelEngine.SD_CPP,
  "llama-cpp": ModelEngine.LLAMA_CPP,
  synthetic: ModelEngine.SYNTHETIC,
};

const roleByName: Record<RoleName, ModelFileRole> = {
  "diffusion-model": ModelFileRole.DIFFUSION_MODEL,
  "text-encoder": ModelFileRole.TEXT_ENCODER,
  vae: ModelFileRole.VAE,
  lora: ModelFileRole.LORA,
  model: ModelFileRole.MODEL,
  "clip-l": ModelFileRole.CLIP_L,
  "clip-g": ModelFileRole.CLIP_G,
  t5xxl: ModelFileRole.T5XXL,
  "llm-vision": ModelFileRole.LLM_VISION,
  taesd: ModelFileRole.TAESD,
  "high-noise-diffusion-model": ModelFileRole.HIGH_NOISE_DIFFUSION_MODEL,
};

/** The proto enum value for a wire engine name. */
export function engineFromName(name: EngineName): ModelEngine {
  return engineByName[name];
}

/** The wire name of an engine, or undefined for UNSPECIFIED and values this build does not know. */
export function engineName(engine: ModelEngine): EngineName | undefined {
  return ENGINE_NAMES.find((n) => engineByName[n] === engine);
}

/** The proto enum value for a wire role name. */
export function roleFromName(name: RoleName): ModelFileRole {
  return roleByName[name];
}

/** The wire name of a role, or undefined for UNSPECIFIED and unknown values. */
export function roleName(role: ModelFileRole): RoleName | undefined {
  return ROLE_NAMES.find((n) => roleByName[n] === role);
}

/** sd-cli's `--sampling-method` names (stable-diffusion.cpp). */
export const SAMPLING_METHODS = [
  "euler",
  "euler_a",
  "heun",
  "dpm2",
  "dpm++2s_a",
  "dpm++2m",
  "dpm++2mv2",
  "ipndm",
  "ipndm_v",
  "lcm",
  "ddim_trailing",
  "tcd",
  "res_multistep",
  "res_2s",
  "er_sde",
  "euler_cfg_pp",
  "euler_a_cfg_pp",
  "euler_ge",
  "dpm++2m_sde",
  "dpm++2m_sde_bt",
  "lms",
] as const;
export type SamplingMethod = (typeof SAMPLING_METHODS)[number];
