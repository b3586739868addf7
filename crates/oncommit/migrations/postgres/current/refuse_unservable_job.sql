CREATE OR REPLACE FUNCTION oncommit.refuse_unservable_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT isfinite(NEW.run_at) OR NEW.run_at < '0001-01-01 00:00:00+00' OR NEW.run_at >= '10000-01-01 00:00:00+00' THEN
        RAISE EXCEPTION 'oncommit: invalid run_at %: it must be a finite time between the years 1 and 9999', NEW.run_at
            USING ERRCODE = 'check_violation';
    END IF;
    RAISE EXCEPTION 'oncommit: invalid queue name %: it must be 1 to 255 bytes, without "," or ":" or control characters',
        quote_literal(NEW.queue)
        USING ERRCODE = 'check_violation';
END
$$;
