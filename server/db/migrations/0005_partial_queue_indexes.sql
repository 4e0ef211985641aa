DROP INDEX `graphicsJobs_queue_order`;--> statement-breakpoint
DROP INDEX `graphicsJobs_lease`;--> statement-breakpoint
CREATE INDEX `graphicsJobs_queued` ON `graphicsJobs` ("priority" DESC,`createdAt`) WHERE "status" = 'QUEUED';--> statement-breakpoint
CREATE INDEX `graphicsJobs_leased` ON `graphicsJobs` (`leaseExpiresAt`) WHERE "status" IN ('OFFERED','RUNNING');