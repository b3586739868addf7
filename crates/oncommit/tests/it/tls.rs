//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` from the URL, over rustls, against
//! private clusters (one with `ssl = on` and a certificate made for the test, one without).

use oncommit::{Db, Error};
use oncommit_testing::{private_cluster, tls_cluster};

/// Whether the session runs over TLS, as the server sees it.
async fn encrypted(db: &Db) -> bool {
    let pool = db.pg_pool().unwrap();
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn sslmode_and_sslrootcert_are_honoured() {
    let cluster = tls_cluster().unwrap();
    let (url, ca, other) = (&cluster.url, cluster.ca.display(), cluster.other_ca.display());
    let localhost = url.replace("127.0.0.1", "localhost");

    // prefer and require encrypt; disable does not, nor a loopback URL that names no sslmode.
    assert!(!encrypted(&Db::connect(url).await.unwrap()).await);
    assert!(encrypted(&Db::connect(&format!("{url}?sslmode=prefer")).await.unwrap()).await);
    assert!(encrypted(&Db::connect(&format!("{url}?sslmode=require")).await.unwrap()).await);
    assert!(!encrypted(&Db::connect(&format!("{url}?sslmode=disable")).await.unwrap()).await);

    // verify-ca checks the signer, not the name; verify-full checks both.
    let db = Db::connect(&format!("{url}?sslmode=verify-ca&sslrootcert={ca}")).await.unwrap();
    assert!(encrypted(&db).await);
    let db = Db::connect(&format!("{localhost}?sslmode=verify-full&sslrootcert={ca}")).await.unwrap();
    assert!(encrypted(&db).await);
    db.migrate().await.unwrap();

    // The certificate names localhost, not 127.0.0.1.
    let err = Db::connect(&format!("{url}?sslmode=verify-full&sslrootcert={ca}")).await.unwrap_err();
    let Error::Tls { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.to_lowercase().contains("name"), "the reason should say the name does not match: {err}");
    assert!(err.to_string().starts_with("TLS to the postgres server at 127.0.0.1:"), "{err}");

    // A root that signed nothing of the server's.
    let err = Db::connect(&format!("{localhost}?sslmode=verify-ca&sslrootcert={other}")).await.unwrap_err();
    let Error::Tls { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.to_lowercase().contains("issuer"), "the reason should say who signed is unknown: {err}");

    // Without sslrootcert, the public roots are trusted, and they did not sign a test CA.
    let err = Db::connect(&format!("{localhost}?sslmode=verify-full")).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");

    // A root file that does not exist is said so.
    let err =
        Db::connect(&format!("{localhost}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert!(err.to_string().contains("sslrootcert file `/nonexistent/ca.pem`"), "{err}");
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let url = private_cluster("127.0.0.1", "127.0.0.1/32").unwrap();
    // prefer falls back to plaintext, as libpq does.
    assert!(!encrypted(&Db::connect(&format!("{url}?sslmode=prefer")).await.unwrap()).await);
    let err = Db::connect(&format!("{url}?sslmode=require")).await.unwrap_err();
    let Error::Tls { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.contains("does not support TLS"), "{err}");
}
