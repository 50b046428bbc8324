-- Kadence schema: schedules, jobs, their audit trail and API tokens, isolated per user by
-- row-level security. The application connects as a role that does not own these tables
-- and sets kadence.user_id / kadence.role in every transaction.

CREATE OR REPLACE FUNCTION kadence_user_id() RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('kadence.user_id', true), '')::bigint $$;

CREATE OR REPLACE FUNCTION kadence_is_master() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('kadence.role', true), '') = 'master' $$;

CREATE TABLE cron_schedules (
    id                            bigserial PRIMARY KEY,
    name                          text        NOT NULL,
    task_goal                     text        NOT NULL DEFAULT '',
    cron_expression               text        NOT NULL,
    timezone                      text        NOT NULL DEFAULT 'UTC',
    user_id                       bigint      NOT NULL CHECK (user_id > 0),
    enabled                       boolean     NOT NULL DEFAULT true,
    last_run                      timestamptz,
    next_run                      timestamptz,
    metadata                      jsonb       NOT NULL DEFAULT '{}',
    priority                      text        NOT NULL DEFAULT 'normal'
                                  CHECK (priority IN ('critical', 'high', 'normal', 'low')),
    max_attempts                  integer     NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    handler                       text        NOT NULL DEFAULT 'webhook',
    args                          jsonb       NOT NULL DEFAULT '{}',
    concurrency_policy            text        NOT NULL DEFAULT 'Allow'
                                  CHECK (concurrency_policy IN ('Allow', 'Forbid', 'Replace')),
    starting_deadline_seconds     integer     CHECK (starting_deadline_seconds >= 0),
    jitter_seconds                integer     NOT NULL DEFAULT 0 CHECK (jitter_seconds >= 0),
    successful_jobs_history_limit integer     NOT NULL DEFAULT 3 CHECK (successful_jobs_history_limit >= 0),
    failed_jobs_history_limit     integer     NOT NULL DEFAULT 1 CHECK (failed_jobs_history_limit >= 0),
    missed_ticks                  bigint      NOT NULL DEFAULT 0,
    skipped_ticks                 bigint      NOT NULL DEFAULT 0,
    last_job_id                   text,
    last_result                   text,
    owner                         text,        -- namespace/name of the custom resource that owns it
    owner_uid                     text UNIQUE, -- its UID, so a retried reconcile finds the same row
    created_at                    timestamptz NOT NULL DEFAULT now(),
    updated_at                    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cron_schedules_due ON cron_schedules (next_run) WHERE enabled;
CREATE INDEX cron_schedules_user ON cron_schedules (user_id);

CREATE TABLE jobs (
    id              text        PRIMARY KEY,
    user_id         bigint      NOT NULL CHECK (user_id > 0),
    task_id         text        NOT NULL,
    task_goal       text        NOT NULL DEFAULT '',
    priority        text        NOT NULL CHECK (priority IN ('critical', 'high', 'normal', 'low')),
    handler         text        NOT NULL,
    args            jsonb       NOT NULL DEFAULT '{}',
    state           text        NOT NULL
                    CHECK (state IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    scheduled_for   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    result          jsonb,
    error           text,
    schedule_id     bigint      REFERENCES cron_schedules (id) ON DELETE SET NULL,
    tick_at         timestamptz, -- the cron tick this job fires, for schedule jobs
    owner           text         -- namespace/name of the custom resource that owns it
);
CREATE INDEX jobs_user_created ON jobs (user_id, created_at DESC);
CREATE INDEX jobs_schedule_state ON jobs (schedule_id, state) WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE job_events (
    id          bigserial   PRIMARY KEY,
    job_id      text        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    user_id     bigint      NOT NULL,
    kind        text        NOT NULL
                CHECK (kind IN ('scheduled', 'started', 'completed', 'error', 'failed', 'cancelled')),
    attempt     integer     NOT NULL DEFAULT 0,
    message     text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX job_events_job ON job_events (job_id, id);

CREATE TABLE api_tokens (
    id           bigserial   PRIMARY KEY,
    token_hash   text        NOT NULL UNIQUE, -- SHA-256 of the token; the token itself is never stored
    user_id      bigint      NOT NULL CHECK (user_id > 0),
    role         text        NOT NULL CHECK (role IN ('user', 'master')),
    description  text        NOT NULL DEFAULT '',
    revoked      boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Row-level security. FORCE makes the policies apply to the table owner too, so an
-- installation that runs the application as the owner is still isolated per user.
ALTER TABLE cron_schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE cron_schedules FORCE ROW LEVEL SECURITY;
CREATE POLICY cron_schedules_isolation ON cron_schedules
    USING (kadence_is_master() OR user_id = kadence_user_id())
    WITH CHECK (kadence_is_master() OR user_id = kadence_user_id());

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY jobs_isolation ON jobs
    USING (kadence_is_master() OR user_id = kadence_user_id())
    WITH CHECK (kadence_is_master() OR user_id = kadence_user_id());

ALTER TABLE job_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_events FORCE ROW LEVEL SECURITY;
CREATE POLICY job_events_isolation ON job_events
    USING (kadence_is_master() OR user_id = kadence_user_id())
    WITH CHECK (kadence_is_master() OR user_id = kadence_user_id());

-- Tokens: only master may list or mint them. Authentication looks a hash up through a
-- SECURITY DEFINER function that returns nothing but the owner of that one token.
ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_tokens_master ON api_tokens
    USING (kadence_is_master())
    WITH CHECK (kadence_is_master());

CREATE OR REPLACE FUNCTION kadence_authenticate(p_token_hash text)
    RETURNS TABLE (user_id bigint, role text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$ SELECT t.user_id, t.role FROM public.api_tokens t WHERE t.token_hash = p_token_hash AND NOT t.revoked $$;
REVOKE ALL ON FUNCTION kadence_authenticate(text) FROM PUBLIC;
