//! The arguments of the benches that fill a store: `-- <events> [<store dir>]`, with a
//! temporary store (removed at exit) when no dir is given.

use std::path::PathBuf;

/// Parsed `<events> [<store dir>]`, and whether `cargo bench` (not `cargo test`) runs us.
pub struct StoreArgs {
    /// `cargo bench` passes `--bench`; `cargo test`, which also builds and runs benches, does not.
    #[allow(
        dead_code,
        reason = "each bench includes this file; not all of them read it"
    )]
    pub benchmarking: bool,
    pub total: u64,
    pub dir: PathBuf,
    /// Kept for its `Drop`, which removes the temporary store.
    _temporary: tempfile::TempDir,
}

impl StoreArgs {
    /// `events` defaults to `bench_total` under `cargo bench`, `test_total` under `cargo test`.
    pub fn parse(
        bench_total: u64,
        test_total: u64,
    ) -> Result<StoreArgs, Box<dyn std::error::Error + Send + Sync>> {
        let benchmarking = std::env::args().any(|a| a == "--bench");
        let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
        let total = args
            .next()
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(if benchmarking {
                bench_total
            } else {
                test_total
            });
        let temporary = tempfile::tempdir()?;
        let dir = args
            .next()
            .map(PathBuf::from)
            .unwrap_or_else(|| temporary.path().to_owned());
        Ok(StoreArgs {
            benchmarking,
            total,
            dir,
            _temporary: temporary,
        })
    }
}
