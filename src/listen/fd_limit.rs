//! Every connection is a file descriptor, so the listeners' caps are only real if the process may
//! open that many files. At start-up the soft `RLIMIT_NOFILE` is raised as far as the caps need
//! (up to the hard limit, as Go's runtime does for every program); if the hard limit is lower,
//! the caps are lowered to fit, with a warning, rather than the listeners failing to accept.

use std::io;

/// Descriptors kept for everything that is not a connection: the listeners, the store's
/// files, the log, the runtime's own.
pub const RESERVED: u64 = 256;

/// Raises the soft open-file limit to at least `wanted` if the hard limit allows; returns the
/// soft limit now in force (`None`: unlimited or unknown).
pub fn raise(wanted: u64) -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let current = limit.current?;
        if current >= wanted {
            return Some(current);
        }
        let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => Some(target),
            Err(error) => {
                tracing::warn!(%error, current, wanted, "cannot raise the open-file limit");
                Some(current)
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = wanted;
        None
    }
}

/// Scales `caps` down in proportion (each at least 1) so that together with [`RESERVED`] they
/// fit in `limit` descriptors; returns whether they had to be.
pub fn fit(caps: &mut [&mut usize], limit: u64) -> bool {
    let total: u64 = caps.iter().map(|cap| **cap as u64).sum();
    let available = limit.saturating_sub(RESERVED);
    if total <= available {
        return false;
    }
    let factor = available as f64 / total as f64;
    for cap in caps.iter_mut() {
        **cap = ((**cap as f64 * factor) as usize).max(1);
    }
    true
}

/// Whether an accept failed for want of file descriptors (the process's or the system's).
pub fn is_out_of_files(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        let code = error.raw_os_error();
        code == Some(Errno::MFILE.raw_os_error()) || code == Some(Errno::NFILE.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_shrink_in_proportion_to_fit() {
        let (mut http, mut grpc) = (4000, 1000);
        assert!(!fit(&mut [&mut http, &mut grpc], 10_000));
        assert_eq!((http, grpc), (4000, 1000));
        assert!(fit(&mut [&mut http, &mut grpc], 1024 + RESERVED));
        assert_eq!((http, grpc), (819, 204));
        let mut tiny = 10;
        assert!(fit(&mut [&mut tiny], 5));
        assert_eq!(tiny, 1);
    }

    #[test]
    fn the_limit_is_at_least_what_it_was() {
        let now = raise(0);
        assert_eq!(raise(1), now);
    }
}
