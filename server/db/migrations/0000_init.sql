CREATE TABLE `apiTokens` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`role` text NOT NULL,
	`secretHash` text NOT NULL,
	`createdAt` integer NOT NULL,
	`lastUsedAt` integer,
	`revokedAt` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `apiTokens_hash` ON `apiTokens` (`secretHash`);--> statement-breakpoint
CREATE TABLE `graphicsJobs` (
	`id` text PRIMARY KEY NOT NULL,
	`model` text NOT NULL,
	`engine` text,
	`status` text NOT NULL,
	`priority` integer DEFAULT 0 NOT NULL,
	`task` text NOT NULL,
	`modelSource` text,
	`attempts` integer DEFAULT 0 NOT NULL,
	`maxAttempts` integer DEFAULT 3 NOT NULL,
	`leaseId` text,
	`leaseExpiresAt` integer,
	`leaseWorker` text,
	`error` text DEFAULT '' NOT NULL,
	`outputs` text DEFAULT '[]' NOT NULL,
	`progress` text,
	`idempotencyKey` text,
	`promotedFrom` text,
	`createdAt` integer NOT NULL,
	`updatedAt` integer NOT NULL,
	`finishedAt` integer
);
--> statement-breakpoint
CREATE INDEX `graphicsJobs_queue` ON `graphicsJobs` (`status`,`priority`,`createdAt`);--> statement-breakpoint
CREATE INDEX `graphicsJobs_list` ON `graphicsJobs` (`createdAt`,`id`);--> statement-breakpoint
CREATE INDEX `graphicsJobs_model_list` ON `graphicsJobs` (`model`,`createdAt`);--> statement-breakpoint
CREATE INDEX `graphicsJobs_lease` ON `graphicsJobs` (`status`,`leaseExpiresAt`);--> statement-breakpoint
CREATE UNIQUE INDEX `graphicsJobs_idempotency` ON `graphicsJobs` (`idempotencyKey`) WHERE "idempotencyKey" IS NOT NULL;--> statement-breakpoint
CREATE TABLE `studioModels` (
	`name` text PRIMARY KEY NOT NULL,
	`enabled` integer DEFAULT true NOT NULL,
	`engine` text NOT NULL,
	`source` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`createdAt` integer NOT NULL,
	`updatedAt` integer NOT NULL
);
