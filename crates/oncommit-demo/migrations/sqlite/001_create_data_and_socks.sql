-- The seed application's tables, in the main database (no oncommit_ prefix: they are the app's).
CREATE TABLE IF NOT EXISTS data (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT    NOT NULL CHECK (length(name) <= 50)
);

CREATE TABLE IF NOT EXISTS socks (
    id     INTEGER PRIMARY KEY,
    id_a   INTEGER NOT NULL,
    id_b   INTEGER NOT NULL,
    colour TEXT    NOT NULL,
    pairs  INTEGER NOT NULL DEFAULT 0
);
