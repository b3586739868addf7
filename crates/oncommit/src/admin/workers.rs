//! The workers that serve a database, and what their tasks declare.

use super::Workers;
use crate::error::Result;
use crate::queries::{self, TaskDeclaration, WorkerInfo};

impl Workers<'_> {
    /// The workers that reported recently.
    pub async fn list(&self) -> Result<Vec<WorkerInfo>> {
        queries::worker_list(self.db).await
    }

    /// What each task declares for its jobs, as recorded by the workers that register it:
    /// the queue, priority and attempts a job gets when it is enqueued without them.
    pub async fn tasks(&self) -> Result<Vec<TaskDeclaration>> {
        queries::task_list(self.db).await
    }
}
