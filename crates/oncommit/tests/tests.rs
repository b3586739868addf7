//! oncommit's integration tests, one binary (so it links once), one module per area.
//! Each behaviour is written once and run on SQLite and PostgreSQL by `backend_test!`.

mod it;
