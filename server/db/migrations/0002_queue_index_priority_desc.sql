DROP INDEX `graphicsJobs_queue`;--> statement-breakpoint
CREATE INDEX `graphicsJobs_queue_order` ON `graphicsJobs` (`status`,"priority" DESC,`createdAt`);