//! Who may change the schema: `migrate`; `serve` and `demo` on the embedded SQLite default
//! (the main job starts with no set-up) or with `--migrate`. Every other command reads the
//! version and refuses (exit 5) when the schema is missing or does not suit this binary,
//! saying what to run: `oncommit stats` against production changes nothing.

use oncommit::{Backend, Db};

use crate::args::Command;
use crate::exit::Exit;

/// Migrates or checks the schema, as `command` is allowed to.
pub(crate) async fn prepare(db: &Db, command: &Command) -> anyhow::Result<()> {
    let embedded = db.backend() == Backend::Sqlite;
    let (migrate, demo) = match command {
        Command::Migrate { demo } => (true, *demo),
        Command::Serve { migrate, .. } => (*migrate || embedded, true),
        Command::Demo { .. } => (embedded, true),
        // It reports the schema's state itself, whatever it is.
        Command::Doctor { .. } => return Ok(()),
        _ => (false, false),
    };
    if migrate {
        // A migration of a large table (an index built, a table rebuilt) can take a while.
        let migrating = async {
            match demo {
                true => oncommit_demo::schema::migrate(db).await,
                false => db.migrate().await,
            }
        };
        return Ok(crate::progress::while_running("migrating", migrating).await?);
    }
    let status = db.schema_status().await?;
    if status.check().is_err() {
        return Err(Exit::Refused(status.to_string()).into());
    }
    if demo && !oncommit::migrate::is_applied(db, &oncommit_demo::schema::MIGRATIONS).await? {
        let message =
            "the demo application's tables are missing or older than this binary: run `oncommit migrate --demo`";
        return Err(Exit::Refused(message.to_owned()).into());
    }
    Ok(())
}
