//! What the test suites share and the product must not carry: how a test that cannot run on this
//! machine says so, and how a test counts the allocations of a step that must make none.
//! Depends on nothing.
//!
//! A test (or one tier or case of it) that this machine cannot run calls [`skip`]. libtest has no
//! way to mark a running test skipped, so the skip is written down instead: on stderr, and as a
//! line appended to the file `$WARD_SKIPPED` names, which `scripts/test.sh` sets, lists by name
//! and counts as skipped in its final line, never as passed.

use std::io::Write;

mod allocations;

pub use allocations::{allocations_in, CountingAllocator};

/// Record that `what` (a tier, a case, or the whole test: "") of the running test was not run
/// here, and `why`. The test is named from its thread, which libtest names after it.
pub fn skip(what: &str, why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let line = if what.is_empty() {
        format!("{test}: {why}")
    } else {
        format!("{test} [{what}]: {why}")
    };
    eprintln!("skipped: {line}");
    if let Some(path) = std::env::var_os("WARD_SKIPPED") {
        // One short write with O_APPEND: lines from parallel tests and processes do not mix.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            panic!("cannot record a skipped test in {path:?}: {e}");
        }
    }
}
