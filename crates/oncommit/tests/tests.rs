//! oncommit's integration tests, one binary (so it links once), one module per area.
//! Each behaviour is written once and run on SQLite and PostgreSQL by `backend_test!`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod it;
