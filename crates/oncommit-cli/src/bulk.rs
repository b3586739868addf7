//! `oncommit retry | cancel | delete --state …`: every job a selection picks.

use oncommit::Db;
use serde_json::json;

use crate::args::SelectArgs;
use crate::demo::print;
use crate::progress::while_running;

/// The bulk actions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Retry,
    Cancel,
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Delete => "delete",
        }
    }
}

/// Counts the selected jobs (`--dry-run`), or acts on them and says how many it changed.
pub(crate) async fn act(db: &Db, action: Action, select: &SelectArgs, json: bool) -> anyhow::Result<()> {
    let selection = select.selection();
    if select.dry_run {
        let matched = db.jobs().count(&selection).await?;
        return print(json, &json!({ "action": action.name(), "dry_run": true, "matched": matched }), || {
            format!("{matched} jobs selected; nothing done (--dry-run)")
        });
    }
    // The count first, so a long action shows what it is working through.
    let matched = db.jobs().count(&selection).await?;
    let working = format!("{}: {matched} jobs selected", action.name());
    match action {
        Action::Retry => {
            let retried = while_running(&working, db.jobs().retry_all(&selection)).await?;
            print(json, &json!({ "retried": retried }), || format!("{retried} jobs retried"))
        }
        Action::Cancel => {
            let done = while_running(&working, db.jobs().cancel_all(&selection)).await?;
            print(json, &json!({ "cancelled": done.cancelled, "requested": done.requested }), || {
                format!("{} jobs cancelled; {} running jobs asked to stop", done.cancelled, done.requested)
            })
        }
        Action::Delete => {
            let deleted = while_running(&working, db.jobs().delete_all(&selection)).await?;
            print(json, &json!({ "deleted": deleted }), || format!("{deleted} jobs deleted"))
        }
    }
}
