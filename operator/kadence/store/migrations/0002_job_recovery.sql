-- Keep every field needed to queue a job again from its row alone, so a job whose Redis
-- entry was lost (Redis restarted without persistence, or a crash between the commit and
-- the enqueue) can be put back on its queue.
ALTER TABLE jobs
    ADD COLUMN backoff_base_seconds double precision NOT NULL DEFAULT 1,
    ADD COLUMN backoff_max_seconds  double precision NOT NULL DEFAULT 3600,
    ADD COLUMN timeout_seconds      integer          NOT NULL DEFAULT 300;

CREATE INDEX jobs_pending ON jobs (created_at) WHERE state IN ('waiting', 'delayed');
