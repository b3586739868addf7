//! Workflows: chains, groups and a final step (Celery's chain, group and chord) as jobs that
//! depend on each other, enqueued together inside the caller's transaction. The guide is
//! `docs/workflows.md`.

use crate::db::Db;
use crate::enqueue::EnqueueOptions;
use crate::error::{Error, Result};
use crate::job::{Job, JobId};
use crate::task::{Task, TaskOptions};
use crate::transaction::{Tx, in_scope_of};

/// One job of a workflow: a task with its arguments and options.
#[derive(Debug, Clone)]
#[must_use]
pub struct Step {
    task: String,
    /// The arguments as JSON, or why they could not be serialized (reported at enqueue).
    args: std::result::Result<String, String>,
    opts: EnqueueOptions,
    /// The task's own options, when the step was made from its type.
    declared: Option<TaskOptions>,
}

impl Step {
    /// A step running `task`, with the options its type declares.
    pub fn new<T: Task>(task: T) -> Step {
        Step {
            task: T::NAME.to_owned(),
            args: serde_json::to_string(&task).map_err(|e| e.to_string()),
            opts: EnqueueOptions::new(),
            declared: Some(T::options()),
        }
    }

    /// A step running the task named `task` with JSON `args` (another language's task, say).
    pub fn raw(task: impl Into<String>, args: serde_json::Value) -> Step {
        Step { task: task.into(), args: Ok(args.to_string()), opts: EnqueueOptions::new(), declared: None }
    }

    /// Per-job options (queue, priority, delay, attempts; `run_after_failed_parents` for a
    /// clean-up step). Its parents are the workflow's previous stage.
    pub fn options(mut self, opts: EnqueueOptions) -> Step {
        self.opts = opts;
        self
    }
}

impl<T: Task> From<T> for Step {
    fn from(task: T) -> Step {
        Step::new(task)
    }
}

/// Jobs that run in stages: each stage's jobs start once every job of the stage before has
/// completed, and run at the same time as each other. Enqueued at once, in one transaction,
/// each step a normal job (retries, leases and fencing apply unchanged); a step reads its
/// parents' results with [`TaskContext::parents`](crate::TaskContext::parents).
///
/// ```no_run
/// # use oncommit::{Db, Step, Workflow};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Fetch { day: String }
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Render { region: String }
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Publish;
/// # macro_rules! task { ($t:ty, $n:literal) => { impl oncommit::Task for $t { const NAME: &'static str = $n;
/// #   async fn run(self, _: &mut oncommit::TaskContext) -> Result<(), oncommit::TaskError> { Ok(()) } } } }
/// # task!(Fetch, "fetch"); task!(Render, "render"); task!(Publish, "publish");
/// # async fn demo(db: Db) -> oncommit::Result<()> {
/// let mut tx = db.begin().await?;
/// let report = Workflow::named("daily-report")
///     .then(Fetch { day: "2026-11-23".into() })
///     .then_all([Render { region: "eu".into() }, Render { region: "us".into() }])
///     .then(Publish);
/// let ids = tx.enqueue_workflow(report).await?;
/// tx.commit().await?;
/// println!("workflow {}: {} steps", ids.id, ids.jobs().count());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Workflow {
    name: Option<String>,
    stages: Vec<Vec<Step>>,
}

/// What [`Tx::enqueue_workflow`] enqueued.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkflowIds {
    /// The workflow's id, stored with each of its jobs (`Job::workflow_id`).
    pub id: String,
    /// The jobs of each stage, in order.
    pub stages: Vec<Vec<JobId>>,
}

impl WorkflowIds {
    /// Every job of the workflow, stage after stage.
    pub fn jobs(&self) -> impl Iterator<Item = JobId> + '_ {
        self.stages.iter().flatten().copied()
    }
}

/// One job of a workflow as [`Jobs::workflow`](crate::admin::Jobs::workflow) reads it: the job and the jobs it waits for.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkflowJob {
    /// The job, with its state and result.
    pub job: Job,
    /// The jobs it depends on (its parents).
    pub parents: Vec<JobId>,
}

impl Workflow {
    /// An empty workflow.
    pub fn new() -> Workflow {
        Workflow::default()
    }

    /// An empty workflow whose id starts with `name` (shown by the CLI and the dashboard).
    pub fn named(name: impl Into<String>) -> Workflow {
        Workflow { name: Some(name.into()), stages: Vec::new() }
    }

    /// Adds a stage of one job, after every job of the previous stage (a chain).
    pub fn then(mut self, step: impl Into<Step>) -> Self {
        self.stages.push(vec![step.into()]);
        self
    }

    /// Adds a stage of jobs that run at the same time, each after every job of the
    /// previous stage (a group; the stage after it is a chord's callback). For steps of
    /// different tasks, give [`Step`]s: `then_all([Step::new(a), Step::new(b)])`.
    pub fn then_all<S: Into<Step>>(mut self, steps: impl IntoIterator<Item = S>) -> Self {
        self.stages.push(steps.into_iter().map(Into::into).collect());
        self
    }

    /// The workflow's id: its name (or `workflow`) and a random part.
    fn new_id(&self) -> String {
        let name = self.name.as_deref().unwrap_or("workflow");
        format!("{name}-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
    }

    /// Refuses a workflow no worker could run as written.
    fn check(&self) -> Result<()> {
        let refuse = |reason: &str| Err(Error::InvalidOption { option: "workflow", reason: reason.to_owned() });
        if self.stages.is_empty() {
            return refuse("it has no steps");
        }
        if self.stages.iter().any(Vec::is_empty) {
            return refuse("a stage has no steps (then_all of nothing)");
        }
        if let Some(name) = &self.name {
            if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
                return refuse("its name must be 1 to 200 bytes, without control characters");
            }
        }
        Ok(())
    }
}

impl Tx<'_> {
    /// Enqueues every step of `workflow` in this transaction: all of it commits, or none.
    /// The first stage is available at once (or at its run time); each later stage is
    /// `pending` until the stage before has completed.
    pub async fn enqueue_workflow(&mut self, workflow: Workflow) -> Result<WorkflowIds> {
        workflow.check()?;
        let id = workflow.new_id();
        let mut stages: Vec<Vec<JobId>> = Vec::with_capacity(workflow.stages.len());
        for stage in workflow.stages {
            let parents = stages.last().cloned().unwrap_or_default();
            let mut ids = Vec::with_capacity(stage.len());
            for step in stage {
                let args = step.args.map_err(|reason| Error::InvalidArgs { task: step.task.clone(), reason })?;
                let opts = step.opts.depends_on(parents.iter().copied()).in_workflow(id.clone());
                let job = opts.build(&step.task, args, step.declared.as_ref())?;
                ids.extend(self.insert(std::slice::from_ref(&job)).await?);
            }
            stages.push(ids);
        }
        Ok(WorkflowIds { id, stages })
    }
}

impl Db {
    /// [`Tx::enqueue_workflow`] in a transaction of its own. Inside a transaction closure
    /// on this database this is refused ([`Error::EnqueueOutsideTransaction`]): use the
    /// transaction's.
    pub async fn enqueue_workflow(&self, workflow: Workflow) -> Result<WorkflowIds> {
        if in_scope_of(self) {
            return Err(Error::EnqueueOutsideTransaction);
        }
        let mut tx = self.begin().await?;
        let ids = tx.enqueue_workflow(workflow).await?;
        tx.commit().await?;
        Ok(ids)
    }
}
