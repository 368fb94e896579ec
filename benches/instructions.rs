//! Instruction counts of verification and of each provider's normalization, measured under
//! `valgrind --tool=callgrind` and compared with a committed baseline, so a regression shows
//! without the timing noise of a shared machine.
//!
//! The binary runs itself under callgrind twice per case, with `n` and `3n` iterations, and
//! reports `(Ir(3n) - Ir(n)) / 2n`: start-up, fixture building and first-touch allocations
//! cancel out. Counts differ between the debug build (`cargo test`, which runs this as part of
//! the test command) and the release build (`cargo bench --bench instructions`), so the
//! baseline (`benches/instructions.baseline`) holds both.
//!
//! A case more than [`TOLERANCE`] above its baseline fails the run. After an intended change (or
//! a new rustc or dependency), rewrite the current profile's lines with
//! `HOOKNORM_BLESS_INSTRUCTIONS=1` and commit the file. Without valgrind the check is skipped
//! with a message.

use std::hint::black_box;
use std::path::Path;
use std::process::{Command, ExitCode};

use hooknorm::config::VerificationConfig;
use hooknorm::verify::Verifier;

mod common;

/// Relative growth over the baseline that fails the check. Counts repeat to well under 1%
/// between runs (hash seeds and allocator state move them slightly).
const TOLERANCE: f64 = 0.03;

const BASELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/instructions.baseline");

const CASES: [&str; 5] = [
    "verify_1KiB",
    "normalize_gigs_1KiB",
    "normalize_abowire",
    "normalize_mobile_manager_order",
    "normalize_mobile_manager_alert",
];

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Runs `case` `n` times in this process (the part measured under callgrind).
fn workload(case: &str, n: u64) -> Result<(), String> {
    if case == "verify_1KiB" {
        let verifier = common::verifier();
        let raw = common::signed(common::padded_body(1 << 10), common::fixed_time());
        for _ in 0..n {
            black_box(verifier.check(black_box(&raw))).map_err(|error| error.to_string())?;
        }
        return Ok(());
    }
    let (_, kind, source, body) = common::provider_cases()
        .into_iter()
        .find(|(label, ..)| case.strip_prefix("normalize_") == Some(label))
        .ok_or_else(|| format!("unknown case {case}"))?;
    // Verification is not what is measured here: an unauthenticated source passes everything.
    let verifier = Verifier::from_config(&VerificationConfig::None, None);
    let verified = common::raw(source, body)
        .verify(&verifier)
        .map_err(|error| error.to_string())?;
    for _ in 0..n {
        drop(black_box(kind.normalize(source, black_box(&verified))).map_err(|e| e.to_string())?);
    }
    Ok(())
}

/// Instructions executed by this binary running `case` `n` times, as callgrind counts them.
fn count(case: &str, n: u64, out: &Path) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|error| error.to_string())?;
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--quiet")
        .arg(exe)
        .args(["--workload", case, &n.to_string()])
        .status()
        .map_err(|error| format!("valgrind: {error}"))?;
    if !status.success() {
        return Err(format!("{case}: valgrind run failed ({status})"));
    }
    let report = std::fs::read_to_string(out).map_err(|error| error.to_string())?;
    report
        .lines()
        .find_map(|line| line.strip_prefix("summary: "))
        .and_then(|total| total.trim().parse().ok())
        .ok_or_else(|| format!("{case}: no summary line in {}", out.display()))
}

/// `profile case instructions` lines; `#` starts a comment.
fn read_baseline() -> Vec<(String, String, u64)> {
    let text = std::fs::read_to_string(BASELINE).unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (profile, case, count) = (fields.next()?, fields.next()?, fields.next()?);
            Some((profile.to_owned(), case.to_owned(), count.parse().ok()?))
        })
        .collect()
}

fn write_baseline(measured: &[(&str, u64)]) -> Result<(), String> {
    let text = std::fs::read_to_string(BASELINE).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| line.split_whitespace().next() != Some(profile()))
        .map(str::to_owned)
        .collect();
    for (case, count) in measured {
        lines.push(format!("{} {case} {count}", profile()));
    }
    std::fs::write(BASELINE, lines.join("\n") + "\n").map_err(|error| error.to_string())
}

fn check() -> Result<bool, String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("instructions: valgrind not found, instruction-count check skipped");
        return Ok(true);
    }
    let n: u64 = if cfg!(debug_assertions) { 20 } else { 200 };
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let mut measured = Vec::new();
    for case in CASES {
        let once = count(case, n, &dir.path().join("once.out"))?;
        let thrice = count(case, 3 * n, &dir.path().join("thrice.out"))?;
        measured.push((case, thrice.saturating_sub(once) / (2 * n)));
    }
    if std::env::var_os("HOOKNORM_BLESS_INSTRUCTIONS").is_some() {
        write_baseline(&measured)?;
        println!("instructions: {} baseline written to {BASELINE}", profile());
        return Ok(true);
    }
    let baseline = read_baseline();
    let mut passed = true;
    for (case, count) in measured {
        let expected = baseline
            .iter()
            .find(|(p, c, _)| p == profile() && c == case)
            .map(|(.., count)| *count);
        let Some(expected) = expected else {
            println!(
                "instructions/{case}: {count} per call, no {} baseline",
                profile()
            );
            passed = false;
            continue;
        };
        let ratio = count as f64 / expected as f64;
        let verdict = if ratio > 1.0 + TOLERANCE {
            passed = false;
            "REGRESSION"
        } else if ratio < 1.0 - TOLERANCE {
            "faster than the baseline: bless it to keep the gain"
        } else {
            "ok"
        };
        println!(
            "instructions/{case} ({}): {count} per call, baseline {expected} ({ratio:.3}x) {verdict}",
            profile()
        );
    }
    Ok(passed)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, case, n, ..] = args.as_slice()
        && flag == "--workload"
    {
        let result = n
            .parse()
            .map_err(|_| format!("bad count {n}"))
            .and_then(|n| workload(case, n));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("instructions: {error}");
                ExitCode::FAILURE
            }
        };
    }
    match check() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!(
                "instructions: over the baseline by more than {:.0}% (rebaseline after an intended change: HOOKNORM_BLESS_INSTRUCTIONS=1)",
                TOLERANCE * 100.0
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("instructions: {error}");
            ExitCode::FAILURE
        }
    }
}
