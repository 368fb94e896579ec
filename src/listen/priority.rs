//! The CPU priority of the thread that accepts. The binary runs every listener's accept loop on
//! its main thread, beside the runtime's workers, which serve the requests: on a machine with as
//! many cores as workers, the kernel shares them three ways. Under a connection flood that
//! thread always has work (accepting, refusing, closing), and at equal priority it takes cores
//! from requests already in, a scheduler slice at a time. One step down, it still gets every
//! idle cycle and a share of busy ones (the kernel's queue of finished handshakes absorbs the
//! rest), and requests already in go first.

use std::io;

/// How far below the workers the accepting thread runs: nice 5 weighs a third of nice 0.
pub const ACCEPT_NICENESS: i32 = 5;

/// Lowers the calling thread's priority by `niceness` (Linux: nice values are per thread, and
/// threads it spawns from now on start at the new value, so call it once the threads that must
/// not, such as the ops listener's, are running).
pub fn lower_this_thread(niceness: i32) -> io::Result<()> {
    let thread = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(thread))?;
    rustix::process::setpriority_process(Some(thread), now.saturating_add(niceness))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread() {
        let lowered = std::thread::spawn(|| {
            let before = rustix::process::getpriority_process(None).expect("priority");
            lower_this_thread(2).expect("lowering needs no privilege");
            let after = rustix::process::getpriority_process(None).expect("priority");
            (before, after)
        })
        .join()
        .expect("thread");
        assert_eq!(lowered.1, (lowered.0 + 2).min(19));
        let here = rustix::process::getpriority_process(None).expect("priority");
        assert_eq!(here, lowered.0, "the test's own thread is untouched");
    }
}
