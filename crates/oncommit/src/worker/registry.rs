//! The task types a worker can run, by name, with their payloads decoded behind one
//! type-erased signature.

use std::collections::HashMap;
use std::pin::Pin;

use crate::job::Job;
use crate::queries::Declaration;
use crate::task::{Task, TaskContext, TaskError, TaskOptions};

/// How a task's run ended.
pub(crate) struct Ran {
    pub(crate) outcome: Result<(), TaskError>,
    /// Whether it completed its job in its own transaction.
    pub(crate) completed_in_tx: bool,
    /// What it stored with the job (JSON text), for a completion.
    pub(crate) result: Option<String>,
}

/// A running task.
pub(crate) type RunFuture = Pin<Box<dyn Future<Output = Ran> + Send>>;

/// Decodes the payload and starts the task, or says why the payload is unusable.
type Start = fn(&Job, TaskContext) -> Result<RunFuture, String>;

pub(crate) struct Entry {
    pub(crate) options: TaskOptions,
    start: Start,
}

impl Entry {
    pub(crate) fn start(&self, job: &Job, cx: TaskContext) -> Result<RunFuture, String> {
        (self.start)(job, cx)
    }
}

fn start<T: Task>(job: &Job, mut cx: TaskContext) -> Result<RunFuture, String> {
    let task: T = serde_json::from_value(job.args.clone()).map_err(|e| e.to_string())?;
    Ok(Box::pin(async move {
        let outcome = task.run(&mut cx).await;
        Ran { outcome, completed_in_tx: cx.completed(), result: cx.take_result() }
    }))
}

#[derive(Default)]
pub(crate) struct Registry {
    entries: HashMap<&'static str, Entry>,
}

impl Registry {
    pub(crate) fn register<T: Task>(&mut self) {
        self.entries.insert(T::NAME, Entry { options: T::options(), start: start::<T> });
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// What the registered tasks declare for their jobs, to record in the database; a
    /// declaration no job could be enqueued with is refused here, at the worker's start.
    pub(crate) fn declarations(&self) -> crate::Result<Vec<Declaration>> {
        let mut declared = Vec::with_capacity(self.entries.len());
        for (task, entry) in &self.entries {
            let o = &entry.options;
            crate::enqueue::check_queue_name(&o.queue)?;
            crate::enqueue::check_max_attempts(o.max_attempts)?;
            declared.push(Declaration {
                task,
                queue: o.queue.clone(),
                priority: o.priority,
                max_attempts: o.max_attempts,
            });
        }
        Ok(declared)
    }

    /// The registered names, sorted, for error messages.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.entries.keys().copied().collect();
        names.sort_unstable();
        names
    }
}
