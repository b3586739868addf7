//! Which jobs a selection picks, as one `WHERE` clause per database: shared by the listing
//! (`Jobs::job_window`) and the bulk actions (`queries::bulk`), so that what the dashboard
//! shows under a filter is exactly what an action on that filter touches.
// Each database uses its own fragments: built with one, the other's go unused.
#![cfg_attr(not(all(feature = "postgres", feature = "sqlite")), allow(unused_macros))]

/// Which jobs a selection picks, as the statements bind it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// The states; never empty (the caller puts every state for "any").
    pub(crate) states: Vec<&'static str>,
    pub(crate) queue: Option<String>,
    pub(crate) task: Option<String>,
    /// Finished (or, if unfinished, created) at or after, epoch ms.
    pub(crate) since_ms: Option<i64>,
    /// … and before, epoch ms.
    pub(crate) until_ms: Option<i64>,
    /// Some attempt's error contains this text, ignoring case.
    pub(crate) error: Option<String>,
    pub(crate) priority: Option<i16>,
    /// The id is this text, or the args or some attempt's error contain it (ignoring case).
    pub(crate) search: Option<String>,
    /// Only these ids, when set.
    pub(crate) ids: Option<Vec<i64>>,
}

#[cfg(feature = "sqlite")]
impl Filter {
    /// The states as SQLite binds them (a JSON array).
    pub(crate) fn states_json(&self) -> crate::Result<String> {
        serde_json::to_string(&self.states).map_err(crate::Error::app)
    }

    /// The ids as SQLite binds them (a JSON array), or NULL.
    pub(crate) fn ids_json(&self) -> crate::Result<Option<String>> {
        self.ids.as_ref().map(|ids| serde_json::to_string(ids).map_err(crate::Error::app)).transpose()
    }
}

/// Some attempt's error in the history contains the text of parameter `$p`, ignoring case.
/// A history that is not an array (written by hand) matches no text rather than failing
/// the statement.
macro_rules! pg_error_contains {
    ($p:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements( \
                 CASE WHEN jsonb_typeof(errors) = 'array' THEN errors ELSE '[]'::jsonb END) AS e \
             WHERE strpos(lower(e ->> 'error'), lower(",
            $p,
            ")) > 0)"
        )
    };
}

macro_rules! sqlite_error_contains {
    ($p:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM json_each( \
                 CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors ELSE '[]' END) AS e \
             WHERE instr(lower(e.value ->> '$.error'), lower(",
            $p,
            ")) > 0)"
        )
    };
}

/// The filter on PostgreSQL: `$1` states, `$2` queue, `$3` task, `$4`/`$5` the time range in
/// epoch ms, `$6` error text, `$7` priority, `$8` search text, `$9` ids. Statements number
/// their own parameters from `$10`.
macro_rules! pg_filter {
    () => {
        concat!(
            "state = ANY($1::text[]) AND ($2::text IS NULL OR queue = $2) AND ($3::text IS NULL OR task = $3) \
             AND ($4::int8 IS NULL OR coalesce(finished_at, created_at) >= to_timestamp($4::int8 / 1000.0)) \
             AND ($5::int8 IS NULL OR coalesce(finished_at, created_at) < to_timestamp($5::int8 / 1000.0)) \
             AND ($6::text IS NULL OR ",
            pg_error_contains!("$6"),
            ") AND ($7::int2 IS NULL OR priority = $7) \
             AND ($8::text IS NULL OR id::text = $8 OR strpos(lower(args::text), lower($8)) > 0 OR ",
            pg_error_contains!("$8"),
            ") AND ($9::int8[] IS NULL OR id = ANY($9))"
        )
    };
}

/// The same filter on SQLite (states and ids as JSON arrays).
macro_rules! sqlite_filter {
    () => {
        concat!(
            "state IN (SELECT value FROM json_each($1)) AND ($2 IS NULL OR queue = $2) AND ($3 IS NULL OR task = $3) \
             AND ($4 IS NULL OR coalesce(finished_at, created_at) >= $4) \
             AND ($5 IS NULL OR coalesce(finished_at, created_at) < $5) \
             AND ($6 IS NULL OR ",
            sqlite_error_contains!("$6"),
            ") AND ($7 IS NULL OR priority = $7) \
             AND ($8 IS NULL OR CAST(id AS TEXT) = $8 OR instr(lower(args), lower($8)) > 0 OR ",
            sqlite_error_contains!("$8"),
            ") AND ($9 IS NULL OR id IN (SELECT value FROM json_each($9)))"
        )
    };
}

/// Binds the filter's nine parameters, in order, to a query of either backend (`$states`
/// and `$ids` as that backend takes them).
macro_rules! bind_filter {
    ($query:expr, $f:expr, $states:expr, $ids:expr) => {
        $query
            .bind($states)
            .bind($f.queue.as_deref())
            .bind($f.task.as_deref())
            .bind($f.since_ms)
            .bind($f.until_ms)
            .bind($f.error.as_deref())
            .bind($f.priority)
            .bind($f.search.as_deref())
            .bind($ids)
    };
}
