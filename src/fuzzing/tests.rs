//! Every checked-in seed (`fuzz/seeds/<target>/`) and every input that once failed
//! (`fuzz/regressions/<target>/`) through its target: the fuzzers' findings stay fixed, and the
//! invariants the targets assert hold on real bodies, on every `cargo test` and without nightly.

use std::path::{Path, PathBuf};

use super::TARGETS;

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
}

fn replay(kind: &str, target: &str, run: fn(&[u8])) -> usize {
    let paths = inputs(kind, target);
    for path in &paths {
        let data = std::fs::read(path).expect("a readable input");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} fails on {}", path.display());
    }
    paths.len()
}

#[test]
fn every_target_passes_on_its_seeds() {
    for (target, run) in TARGETS {
        let seeds = replay("seeds", target, *run);
        assert!(seeds > 0, "no seeds for {target} in fuzz/seeds/{target}");
    }
}

#[test]
fn every_finding_stays_fixed() {
    for (target, run) in TARGETS {
        replay("regressions", target, *run);
    }
    // Every regression directory names a target (a renamed target would leave its findings
    // unreplayed).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries {
            let name = entry.expect("a readable directory entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                TARGETS.iter().any(|(target, _)| *target == name),
                "fuzz/regressions/{name} is not a target"
            );
        }
    }
}
