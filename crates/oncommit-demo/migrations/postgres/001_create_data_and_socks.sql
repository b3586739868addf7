-- The seed application's tables, in the application's own schema (search_path, usually public).
-- data: seed 000's model (Data.objects.create(name='Dummy')).
CREATE TABLE IF NOT EXISTS data (
    id   BIGSERIAL   PRIMARY KEY,
    name VARCHAR(50) NOT NULL
);

-- socks: seed 004's model, plus a counter (pairs) for the lost-update scenario.
CREATE TABLE IF NOT EXISTS socks (
    id     BIGINT  PRIMARY KEY,
    id_a   INTEGER NOT NULL,
    id_b   INTEGER NOT NULL,
    colour TEXT    NOT NULL,
    pairs  INTEGER NOT NULL DEFAULT 0
);
