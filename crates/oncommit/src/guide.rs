//! The guides of `docs/`, pulled in here so that their examples are compiled as doctests.

#[doc = include_str!("../../../docs/jobs.md")]
pub mod jobs {}

#[doc = include_str!("../../../docs/observability.md")]
pub mod observability {}

#[doc = include_str!("../../../docs/flow-control.md")]
pub mod flow_control {}

#[doc = include_str!("../../../docs/workflows.md")]
pub mod workflows {}

#[doc = include_str!("../../../docs/deployment.md")]
pub mod deployment {}

#[doc = include_str!("../../../docs/upgrading.md")]
pub mod upgrading {}

#[doc = include_str!("../../../docs/fairness.md")]
pub mod fairness {}

#[doc = include_str!("../../../docs/history.md")]
pub mod history {}
