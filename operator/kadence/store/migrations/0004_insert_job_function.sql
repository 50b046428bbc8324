-- Record one new job for a user in a single statement: the user context and the insert
-- travel together, in one round trip, which is the whole cost of scheduling one task. The
-- function runs with the caller's rights (SECURITY INVOKER), so row-level security checks
-- the row exactly as it checks a plain INSERT, and it puts the caller's own context back
-- before returning. Returns false when a job with this id exists already.
CREATE OR REPLACE FUNCTION kadence_insert_job(
    p_context_user_id text, p_context_role text,
    p_id text, p_user_id bigint, p_task_id text, p_task_goal text, p_priority text, p_handler text,
    p_args jsonb, p_state text, p_max_attempts integer, p_scheduled_for timestamptz, p_schedule_id bigint,
    p_tick_at timestamptz, p_owner text,
    p_backoff_base_seconds double precision, p_backoff_max_seconds double precision, p_timeout_seconds integer
) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    v_user_id text := current_setting('kadence.user_id', true);
    v_role text := current_setting('kadence.role', true);
    v_created boolean;
BEGIN
    PERFORM set_config('kadence.user_id', p_context_user_id, true), set_config('kadence.role', p_context_role, true);
    INSERT INTO public.jobs (id, user_id, task_id, task_goal, priority, handler, args, state, max_attempts,
                             scheduled_for, schedule_id, tick_at, owner,
                             backoff_base_seconds, backoff_max_seconds, timeout_seconds)
    VALUES (p_id, p_user_id, p_task_id, p_task_goal, p_priority, p_handler, p_args, p_state, p_max_attempts,
            p_scheduled_for, p_schedule_id, p_tick_at, p_owner,
            p_backoff_base_seconds, p_backoff_max_seconds, p_timeout_seconds)
    ON CONFLICT (id) DO NOTHING;
    v_created := FOUND;
    PERFORM set_config('kadence.user_id', coalesce(v_user_id, ''), true),
            set_config('kadence.role', coalesce(v_role, ''), true);
    RETURN v_created;
END
$$;
REVOKE ALL ON FUNCTION kadence_insert_job FROM PUBLIC;
