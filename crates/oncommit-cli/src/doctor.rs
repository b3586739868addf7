//! `oncommit doctor`: the library's checks (`oncommit::doctor`), printed one per line, or
//! as one JSON object; exit 1 when one found a problem.

use std::time::Duration;

use oncommit::Db;
use oncommit::doctor::{Diagnosis, DoctorOptions, Verdict, diagnose};

/// The diagnosis when the database could not even be connected to: one finding.
pub(crate) fn unconnected(err: &oncommit::Error, json: bool) -> anyhow::Result<()> {
    let diagnosis = oncommit::doctor::unconnected(err);
    print(&diagnosis, json)
}

pub(crate) async fn run(db: &Db, transaction_age: u64, json: bool) -> anyhow::Result<()> {
    let options = DoctorOptions { transaction_age: Duration::from_secs(transaction_age), ..DoctorOptions::default() };
    print(&diagnose(db, &options).await, json)
}

fn print(diagnosis: &Diagnosis, json: bool) -> anyhow::Result<()> {
    crate::demo::print(json, diagnosis, || {
        let mut text = String::new();
        for f in &diagnosis.findings {
            let verdict = match f.verdict {
                Verdict::Ok => "ok",
                Verdict::Note => "note",
                Verdict::Problem => "PROBLEM",
            };
            text.push_str(&format!("{verdict:<8}{:<16}{}\n", f.check, f.summary));
            if let Some(advice) = &f.advice {
                text.push_str(&format!("{:<24}-> {advice}\n", ""));
            }
        }
        text.trim_end().to_owned()
    })?;
    let problems = diagnosis.findings.iter().filter(|f| f.verdict == Verdict::Problem).count();
    if problems > 0 {
        anyhow::bail!("oncommit doctor found {problems} problem(s)");
    }
    Ok(())
}
