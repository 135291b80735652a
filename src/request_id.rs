//! The id of the HTTP request a thread works for: the client's `X-Request-Id` when it is sane
//! (1 to 128 visible ASCII characters), else one the hub makes. The front sets it around a
//! request's handler (on the worker, and on the connection's thread for what runs later); a
//! call carries it to the threads it starts (`upstream-call`). The activity feed, the request's
//! log line and the requests to remote MCP servers read it from here.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Longest id taken from a client.
const MAX_LEN: usize = 128;

std::thread_local! {
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Whether a client's id is kept as it is.
pub fn is_sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The request's id: the client's when sane, else a fresh one.
pub fn of_header(header: Option<&str>) -> String {
    match header.map(str::trim) {
        Some(id) if is_sane(id) => id.to_string(),
        _ => generate(),
    }
}

/// 16 hex digits, different for every call in this process and across processes: a counter
/// mixed by a bijection (so no two calls here share one) from a seed drawn once per process.
pub fn generate() -> String {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let digest = Sha256::new()
            .chain_update(std::process::id().to_le_bytes())
            .chain_update(nanos.to_le_bytes())
            .finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
    });
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", mix(seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))))
}

/// splitmix64's finalizer: a bijection on u64 that scatters neighbouring inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The id of the request this thread works for, if any.
pub fn current() -> Option<String> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` working for request `id` (none: for no request); the thread's previous id comes back
/// after.
pub fn with<T>(id: Option<String>, f: impl FnOnce() -> T) -> T {
    let before = CURRENT.with(|c| c.replace(id));
    let out = f();
    CURRENT.with(|c| *c.borrow_mut() = before);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_others_replaced() {
        fn check(header: Option<&str>, kept: bool) {
            let id = of_header(header);
            assert_eq!(Some(id.as_str()) == header, kept, "{header:?} -> {id}");
            assert!(is_sane(&id));
        }
        check(Some("abc-123_x.y:z"), true);
        check(Some(&"a".repeat(128)), true);
        check(Some(&"a".repeat(129)), false);
        check(Some("has space"), false);
        check(Some("é"), false);
        check(Some("line\nbreak"), false);
        check(Some(""), false);
        check(None, false);
        assert_ne!(generate(), generate());
        assert_eq!(generate().len(), 16);
    }

    #[test]
    fn the_id_is_the_threads_for_the_run_only() {
        assert_eq!(current(), None);
        let seen = with(Some("outer".into()), || {
            let inner = with(Some("inner".into()), current);
            (inner, current())
        });
        assert_eq!(seen, (Some("inner".into()), Some("outer".into())));
        assert_eq!(current(), None);
    }
}
