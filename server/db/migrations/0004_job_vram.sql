ALTER TABLE `graphicsJobs` ADD `vramBytes` integer;--> statement-breakpoint
-- Jobs still in the queue get the count contract/vram.ts gives: the source's vramBytes, else the
-- files' approxBytes summed plus a fifth (rounded up) and 512 MiB; none when no file states a size.
UPDATE `graphicsJobs` SET `vramBytes` = COALESCE(json_extract(`modelSource`, '$.vramBytes'), (
  SELECT s + (s + 4) / 5 + 536870912 FROM (
    SELECT SUM(json_extract(f.value, '$.approxBytes')) AS s FROM json_each(`graphicsJobs`.`modelSource`, '$.files') AS f
  ) WHERE s IS NOT NULL
))
WHERE `status` IN ('QUEUED', 'OFFERED', 'RUNNING') AND `engine` IN ('sd-cpp', 'llama-cpp') AND json_valid(`modelSource`);
