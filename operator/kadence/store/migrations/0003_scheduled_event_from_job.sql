-- A job's 'scheduled' event is now read from its row's created_at instead of being
-- written as a row of its own (one insert less per job created). Drop the rows written
-- before, so the trail shows the event once.
DELETE FROM job_events WHERE kind = 'scheduled';
