CREATE TRIGGER oncommit_jobs_schedule_future AFTER INSERT ON oncommit_jobs
WHEN NEW.state = 'available' AND NEW.run_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
BEGIN
    UPDATE oncommit_jobs SET state = 'scheduled' WHERE id = NEW.id;
END;
