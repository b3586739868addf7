CREATE TRIGGER oncommit_jobs_refuse_bad_run_at BEFORE INSERT ON oncommit_jobs
    WHEN typeof(NEW.run_at) <> 'integer' OR NEW.run_at < -62135596800000 OR NEW.run_at >= 253402300800000
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid run_at: it must be whole milliseconds since the Unix epoch, between the years 1 and 9999');
END;
