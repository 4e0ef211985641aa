ALTER TABLE "graphicsJobs" ADD COLUMN "vramBytes" bigint;--> statement-breakpoint
-- Jobs still in the queue get the count contract/vram.ts gives: the source's vramBytes, else the
-- files' approxBytes summed plus a fifth (rounded up) and 512 MiB; none when no file states a size.
-- Row by row, so that a stored source that does not parse leaves that row without a count.
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT "id", "modelSource" FROM "graphicsJobs"
    WHERE "status" IN ('QUEUED', 'OFFERED', 'RUNNING') AND "engine" IN ('sd-cpp', 'llama-cpp') AND "modelSource" IS NOT NULL
  LOOP
    BEGIN
      UPDATE "graphicsJobs" SET "vramBytes" = COALESCE((r."modelSource"::jsonb ->> 'vramBytes')::bigint, (
        SELECT s + (s + 4) / 5 + 536870912 FROM (
          SELECT SUM((f ->> 'approxBytes')::bigint)::bigint AS s FROM jsonb_array_elements(r."modelSource"::jsonb -> 'files') AS f
        ) t WHERE s IS NOT NULL
      )) WHERE "id" = r."id";
    EXCEPTION WHEN others THEN NULL;
    END;
  END LOOP;
END $$;
