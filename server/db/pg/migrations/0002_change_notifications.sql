-- Every committed change other replicas must hear of is announced on the "studio" channel
-- (LISTEN/NOTIFY, delivered at commit, in commit order). Payloads stay small; listeners re-read
-- the row for anything more. "r" is the writer's application_name, so a replica skips its own.
CREATE FUNCTION "studioNotifyJob"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pg_notify('studio', json_build_object('t', 'job', 'r', current_setting('application_name'),
      'id', NEW."id", 's', NEW."status", 'm', NEW."model", 'l', NEW."leaseId", 'w', NEW."leaseWorker")::text);
  ELSE
    -- The lease a change ended is the old row's (a cancel or an expiry clears it).
    PERFORM pg_notify('studio', json_build_object('t', 'job', 'r', current_setting('application_name'),
      'id', NEW."id", 's', NEW."status", 'm', NEW."model",
      'l', COALESCE(NEW."leaseId", OLD."leaseId"), 'w', COALESCE(NEW."leaseWorker", OLD."leaseWorker"))::text);
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "graphicsJobs_notify_insert" AFTER INSERT ON "graphicsJobs"
  FOR EACH ROW EXECUTE FUNCTION "studioNotifyJob"();
--> statement-breakpoint
-- Renewals (only leaseExpiresAt or leaseWorker change) are not news.
CREATE TRIGGER "graphicsJobs_notify_update" AFTER UPDATE ON "graphicsJobs"
  FOR EACH ROW WHEN (OLD."status" IS DISTINCT FROM NEW."status" OR OLD."leaseId" IS DISTINCT FROM NEW."leaseId"
    OR OLD."progress" IS DISTINCT FROM NEW."progress" OR OLD."outputs" IS DISTINCT FROM NEW."outputs")
  EXECUTE FUNCTION "studioNotifyJob"();
--> statement-breakpoint
CREATE FUNCTION "studioNotifyToken"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('studio', json_build_object('t', 'token', 'r', current_setting('application_name'),
    'k', CASE WHEN TG_OP = 'INSERT' THEN 'created' ELSE 'revoked' END, 'id', NEW."id")::text);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "apiTokens_notify_insert" AFTER INSERT ON "apiTokens"
  FOR EACH ROW EXECUTE FUNCTION "studioNotifyToken"();
--> statement-breakpoint
CREATE TRIGGER "apiTokens_notify_revoke" AFTER UPDATE ON "apiTokens"
  FOR EACH ROW WHEN (OLD."revokedAt" IS NULL AND NEW."revokedAt" IS NOT NULL)
  EXECUTE FUNCTION "studioNotifyToken"();
