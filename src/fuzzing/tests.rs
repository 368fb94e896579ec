//! Every checked-in seed (`fuzz/seeds/<target>/`) and every input that once failed
//! (`fuzz/regressions/<target>/`) through its target: the fuzzers' findings stay fixed, and the
//! invariants the targets assert hold on real bodies, on every `cargo test` and without nightly.
//! Then a short pass of blind mutations of the seeds (seeded, so a failure repeats): no coverage
//! guidance, which `cargo fuzz` adds (FUZZING.md), but every target meets bytes no one wrote.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
            let path = entry.expect("a readable directory entry").path();
            if !path.is_dir() {
                continue;
            }
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            assert!(
                TARGETS.iter().any(|(target, _)| *target == name),
                "fuzz/regressions/{name} is not a target"
            );
        }
    }
}

/// Mutations per seed in the short pass: under a second for all targets in a debug build.
const MUTATIONS: usize = 200;

/// One blind mutation of `data`, spliced with `other` now and then.
fn mutate(rng: &mut StdRng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..rng.gen_range(1..8) {
        let at = rng.gen_range(0..=out.len());
        match rng.gen_range(0..6) {
            0 if at < out.len() => out[at] ^= 1 << rng.gen_range(0..8),
            1 if at < out.len() => out[at] = rng.r#gen(),
            2 => out.insert(at, rng.r#gen()),
            3 if at < out.len() => {
                out.remove(at);
            }
            4 => out.truncate(at),
            _ => {
                let from = rng.gen_range(0..=other.len());
                out.splice(at..at, other[from..].iter().take(64).copied());
            }
        }
    }
    out
}

#[test]
fn every_target_survives_blind_mutations_of_its_seeds() {
    let mut rng = StdRng::seed_from_u64(18);
    for (target, run) in TARGETS {
        let seeds: Vec<Vec<u8>> = inputs("seeds", target)
            .iter()
            .map(|path| std::fs::read(path).expect("a readable seed"))
            .collect();
        for (index, seed) in seeds.iter().enumerate() {
            let other = &seeds[(index + 1) % seeds.len()];
            for _ in 0..MUTATIONS {
                let input = mutate(&mut rng, seed, other);
                let outcome = std::panic::catch_unwind(|| run(&input));
                assert!(outcome.is_ok(), "{target} fails on {input:?}");
            }
        }
    }
}
