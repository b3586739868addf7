//! [`atomic!`](crate::atomic!): the transaction scope that compiles anywhere a future must be
//! `Send`.

/// Runs a block in a transaction scope: commits when it evaluates to `Ok`, rolls back when it
/// evaluates to `Err` (or panics), then runs the `on_commit` hooks. It is [`Db::atomic`],
/// [`TxBuilder::run`] and [`Tx::atomic`] in one form that compiles inside `tokio::spawn`,
/// an axum handler or an on-commit hook, with borrowed captures.
///
/// `oncommit::atomic!(SCOPE, |tx| BLOCK)` is a future of `Result<T>`; `BLOCK` sees `tx` as
/// `&mut Tx<'_>`, evaluates to `Result<T>`, and may use `?` and `return` as a closure body
/// would. `SCOPE` is one of:
///
/// - a [`Db`] or `&Db`: a new transaction with default options;
/// - a [`TxBuilder`] (`db.transaction().isolation(…).retry(…)`): a new transaction with
///   those options; with a [`TransactionRetry`](crate::TransactionRetry), the block runs again on retryable errors
///   (each attempt a fresh transaction, [`Tx::attempt`] says which);
/// - an open scope, `tx` (a `&mut Tx` or a guard): a savepoint in it, released on `Ok` and
///   rolled back on `Err` while the enclosing transaction goes on.
///
/// ```no_run
/// use oncommit::{Db, TransactionRetry};
///
/// async fn rename(db: Db, names: Vec<String>) -> oncommit::Result<()> {
///     let handle = tokio::spawn(async move {
///         let names = &names; // borrowed by the block below
///         let mut tries = 0; // and changed by it, on every attempt
///         oncommit::atomic!(db.transaction().retry(TransactionRetry::default()), |tx| {
///             tries += 1;
///             for name in names {
///                 oncommit::with_conn!(tx.conn(), c => {
///                     sqlx::query("UPDATE data SET name = $1 WHERE name = ''").bind(name).execute(c).await?.rows_affected()
///                 });
///             }
///             oncommit::atomic!(tx, |sp| {
///                 sp.on_commit(async { println!("after the commit") });
///                 Ok(())
///             })
///             .await?;
///             Ok(tries)
///         })
///         .await
///     });
///     let tries = handle.await.expect("the task ran")?;
///     println!("committed after {tries} attempt(s)");
///     Ok(())
/// }
/// ```
///
/// # Why a macro
///
/// The closure form takes an `AsyncFnMut(&mut Tx<'_>)`. The future such a closure returns
/// borrows the transaction for a lifetime chosen at each call, and rustc checks the `Send`
/// bound of a future holding it for *every* such lifetime at once; a closure that borrows
/// its captures then fails with "implementation of `Send` is not general enough"
/// (rust-lang/rust#110338), and an on-commit hook that transacts fails with "borrowed for
/// `'static`". Stable Rust has no way to state "the closure's future is `Send`" in a bound.
/// The macro pastes the block into the caller's own `async` code, where every type is
/// concrete and the check succeeds, at no cost: no boxed future, no cloned captures.
/// The closure form stays for code that needs no `Send` future (a `main`, a test).
///
/// [`Db`]: crate::Db
/// [`Db::atomic`]: crate::Db::atomic
/// [`TxBuilder`]: crate::TxBuilder
/// [`TxBuilder::run`]: crate::TxBuilder::run
/// [`Tx::atomic`]: crate::Tx::atomic
/// [`Tx::attempt`]: crate::Tx::attempt
#[macro_export]
macro_rules! atomic {
    ($scope:expr, |$tx:ident| $body:expr $(,)?) => {
        async {
            #[allow(unused_imports)]
            use $crate::transaction::IntoScope as _;
            match ($scope).into_scope().start() {
                ::core::result::Result::Err(err) => ::core::result::Result::Err(err),
                ::core::result::Result::Ok((mut source, mut attempts)) => loop {
                    let (mut guard, marker) = match source.begin(&attempts).await {
                        ::core::result::Result::Ok(opened) => opened,
                        ::core::result::Result::Err(err) => break ::core::result::Result::Err(err),
                    };
                    let result = $crate::transaction::run_in(
                        marker,
                        $crate::transaction::body(async {
                            let $tx = &mut guard;
                            $body
                        }),
                    )
                    .await;
                    if let ::core::option::Option::Some(done) = attempts.finish(guard, result).await {
                        break done;
                    }
                },
            }
        }
    };
}
