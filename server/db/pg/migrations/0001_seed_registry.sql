-- Seed registry rows: real public Hugging Face resolve URLs. approxBytes are rounded estimates
-- taken from published file listings, not measured here; no sha256 is filled because no digest
-- was taken from a published source. VerifyModel reports the exact sizes; an operator updates them.
INSERT INTO "studioModels" ("name", "enabled", "engine", "source", "description", "createdAt", "updatedAt") VALUES (
  'z-image-turbo', true, 'sd-cpp',
  '{"engine":"sd-cpp","files":[{"role":"diffusion-model","url":"https://huggingface.co/leejet/Z-Image-Turbo-GGUF/resolve/main/z_image_turbo-Q4_K.gguf","filename":"z_image_turbo-Q4_K.gguf","approxBytes":3900000000},{"role":"text-encoder","url":"https://huggingface.co/unsloth/Qwen3-4B-Instruct-2507-GGUF/resolve/main/Qwen3-4B-Instruct-2507-Q4_K_M.gguf","filename":"Qwen3-4B-Instruct-2507-Q4_K_M.gguf","approxBytes":2500000000},{"role":"vae","url":"https://huggingface.co/black-forest-labs/FLUX.1-schnell/resolve/main/ae.safetensors","filename":"ae.safetensors","approxBytes":335000000}],"cliDefaults":{"cfgScale":1,"steps":8,"width":1024,"height":1024,"samplingMethod":"euler"}}',
  'Z-Image-Turbo (Q4_K GGUF) for stable-diffusion.cpp, with the Qwen3-4B text encoder and the FLUX.1 VAE that sd.cpp''s Z-Image guide names. approxBytes are rounded estimates from published listings; run VerifyModel for exact sizes.',
  (extract(epoch from now()) * 1000)::bigint, (extract(epoch from now()) * 1000)::bigint
) ON CONFLICT ("name") DO NOTHING;
--> statement-breakpoint
INSERT INTO "studioModels" ("name", "enabled", "engine", "source", "description", "createdAt", "updatedAt") VALUES (
  'qwen3-0.6b', true, 'llama-cpp',
  '{"engine":"llama-cpp","files":[{"role":"model","url":"https://huggingface.co/unsloth/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q4_K_M.gguf","filename":"Qwen3-0.6B-Q4_K_M.gguf","approxBytes":397000000}],"cliDefaults":{}}',
  'Qwen3 0.6B (Q4_K_M GGUF) chat model for llama.cpp''s llama-server. approxBytes is a rounded estimate; run VerifyModel for the exact size.',
  (extract(epoch from now()) * 1000)::bigint, (extract(epoch from now()) * 1000)::bigint
) ON CONFLICT ("name") DO NOTHING;
--> statement-breakpoint
INSERT INTO "studioModels" ("name", "enabled", "engine", "source", "description", "createdAt", "updatedAt") VALUES (
  'synthetic', true, 'synthetic',
  '{"engine":"synthetic","files":[],"cliDefaults":{"steps":4,"width":256,"height":256}}',
  'Deterministic placeholder output with no downloads, for demos and tests.',
  (extract(epoch from now()) * 1000)::bigint, (extract(epoch from now()) * 1000)::bigint
) ON CONFLICT ("name") DO NOTHING;
