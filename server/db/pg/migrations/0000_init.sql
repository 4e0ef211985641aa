CREATE TABLE "apiTokens" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"role" text NOT NULL,
	"secretHash" text NOT NULL,
	"createdAt" bigint NOT NULL,
	"lastUsedAt" bigint,
	"revokedAt" bigint
);
--> statement-breakpoint
CREATE TABLE "graphicsJobs" (
	"id" text PRIMARY KEY NOT NULL,
	"model" text NOT NULL,
	"engine" text,
	"status" text NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"task" text NOT NULL,
	"modelSource" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"maxAttempts" integer DEFAULT 3 NOT NULL,
	"leaseId" text,
	"leaseExpiresAt" bigint,
	"leaseWorker" text,
	"error" text DEFAULT '' NOT NULL,
	"outputs" text DEFAULT '[]' NOT NULL,
	"progress" text,
	"idempotencyKey" text,
	"promotedFrom" text,
	"createdAt" bigint NOT NULL,
	"updatedAt" bigint NOT NULL,
	"finishedAt" bigint
);
--> statement-breakpoint
CREATE TABLE "studioModels" (
	"name" text PRIMARY KEY NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"engine" text NOT NULL,
	"source" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"createdAt" bigint NOT NULL,
	"updatedAt" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "studioOutputBlobs" (
	"sha256" text PRIMARY KEY NOT NULL,
	"size" bigint NOT NULL,
	"createdAt" bigint NOT NULL,
	"verified" boolean DEFAULT false NOT NULL
);
--> statement-breakpoint
CREATE TABLE "studioOutputChunks" (
	"sha256" text NOT NULL,
	"seq" integer NOT NULL,
	"data" "bytea" NOT NULL,
	CONSTRAINT "studioOutputChunks_sha256_seq_pk" PRIMARY KEY("sha256","seq")
);
--> statement-breakpoint
CREATE TABLE "studioReplicas" (
	"id" text PRIMARY KEY NOT NULL,
	"startedAt" bigint NOT NULL,
	"seenAt" bigint NOT NULL,
	"workers" text DEFAULT '[]' NOT NULL
);
--> statement-breakpoint
ALTER TABLE "studioOutputChunks" ADD CONSTRAINT "studioOutputChunks_sha256_studioOutputBlobs_sha256_fk" FOREIGN KEY ("sha256") REFERENCES "public"."studioOutputBlobs"("sha256") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "apiTokens_hash" ON "apiTokens" USING btree ("secretHash");--> statement-breakpoint
CREATE INDEX "graphicsJobs_queue_order" ON "graphicsJobs" USING btree ("priority" DESC NULLS LAST,"createdAt") WHERE "status" = 'QUEUED';--> statement-breakpoint
CREATE INDEX "graphicsJobs_list" ON "graphicsJobs" USING btree ("createdAt","id");--> statement-breakpoint
CREATE INDEX "graphicsJobs_model_list" ON "graphicsJobs" USING btree ("model","createdAt");--> statement-breakpoint
CREATE INDEX "graphicsJobs_lease" ON "graphicsJobs" USING btree ("status","leaseExpiresAt");--> statement-breakpoint
CREATE INDEX "graphicsJobs_lease_id" ON "graphicsJobs" USING btree ("leaseId") WHERE "leaseId" IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "graphicsJobs_idempotency" ON "graphicsJobs" USING btree ("idempotencyKey") WHERE "idempotencyKey" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "studioOutputBlobs_unverified" ON "studioOutputBlobs" USING btree ("createdAt") WHERE NOT "verified";