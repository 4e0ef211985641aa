CREATE TABLE "streamedTexts" (
	"jobId" text PRIMARY KEY NOT NULL,
	"attempt" integer NOT NULL,
	"text" text NOT NULL,
	"reasoning" text NOT NULL,
	"tokens" integer NOT NULL,
	"updatedAt" bigint NOT NULL
);
