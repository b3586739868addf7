//! What oncommit needs of each database, one module per database: how to connect, and the
//! quirks of its sessions.
//!
//! This is the first part of the driver seam: connecting lives here (PostgreSQL's host
//! lists, server roles and pooler mode; SQLite's file, WAL and busy timeout). The
//! statements themselves are still in `queries`, one file per backend, and move here next.

pub(crate) mod postgres;
pub(crate) mod sqlite;
