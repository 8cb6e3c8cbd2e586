//! The audit log through crashes, retention, the disk budget, failing writes and the checks
//! made when it opens.

use std::time::{Duration, Instant};

use super::files::rotated;
use super::seal::SealKey;
use super::test_support::*;
use super::writer::faults;
use super::*;

#[test]
fn a_torn_last_line_is_noted_and_the_next_start_records_its_removal() {
    let fx = Fx::standard();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&fx.log)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"event\":\"requ").unwrap();
    let v = fx.verify();
    assert!(v.broken.is_none(), "{v:?}");
    assert!(v.notes[0].contains("a torn last line"), "{:?}", v.notes);
    fx.run(50..52);
    let v = fx.verify();
    assert!(v.broken.is_none(), "{v:?}");
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("removed a torn line of 14 bytes")),
        "{:?}",
        v.notes
    );
    assert!(!std::fs::read_to_string(&fx.log)
        .unwrap()
        .contains("\"requ\n"));
}

#[test]
fn an_unkeyed_log_verifies_as_a_plain_chain_only() {
    let dir = tempdir();
    let path = dir.join("audit.log");
    let log = AuditLog::open(AuditOptions::new(&path)).unwrap();
    for i in 0..3 {
        log.append(entry(i));
    }
    log.close();
    let v = verify(&path, None, None).unwrap();
    assert!(v.broken.is_none() && !v.keyed && v.entries == 4, "{v:?}");
    let with_key = verify(&path, Some(&SealKey::new([1; 32])), None).unwrap();
    assert!(with_key.broken.unwrap().contains("not sealed with the key"));
    // A keyed log needs the key to be checked at all.
    let fx = Fx::standard();
    let v = verify(&fx.log, None, None).unwrap();
    assert!(v.broken.unwrap().contains("verify it with --key"));
}

#[test]
fn retention_deletes_old_files_and_records_each_deletion() {
    let fx = Fx::new();
    let opts = AuditOptions {
        retain: Some(2),
        ..fx.opts.clone()
    };
    let log = AuditLog::open(opts).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for i in 0..60 {
        assert!(rt.block_on(log.commit(entry(i))));
    }
    log.close();
    let files = rotated(&fx.log);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].0 > 1);
    let v = fx.verify();
    assert!(v.broken.is_none(), "{v:?}");
    assert!(
        v.notes.iter().any(|n| n.contains("deleted by retention")),
        "{:?}",
        v.notes
    );
    let text = std::fs::read_to_string(&fx.log).unwrap()
        + &std::fs::read_to_string(&files[1].1).unwrap()
        + &std::fs::read_to_string(&files[0].1).unwrap();
    assert!(text.contains("\"event\":\"retention\""), "{text}");
    // One more deletion, not by Ward: a break.
    std::fs::remove_file(&files[0].1).unwrap();
    let broken = fx.verify().broken.unwrap();
    assert!(broken.contains("no retention entry"), "{broken}");
}

#[test]
fn the_disk_budget_fails_closed_then_resumes_when_space_is_made() {
    let fx = Fx::new();
    let opts = AuditOptions {
        max_total_bytes: Some(6 * 1024),
        ..fx.opts.clone()
    };
    let log = AuditLog::open(opts).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut written = 0;
    while rt.block_on(log.commit(entry(written))) {
        written += 1;
        assert!(written < 100, "the budget never bit");
    }
    assert!(!log.available());
    assert!(super::files::total_size(&fx.log) <= 6 * 1024);
    // Requests refused meanwhile are not written either.
    assert!(!rt.block_on(log.commit(entry(1000))));
    // The operator archives the oldest file: the writer resumes by itself.
    let archive = fx.log.with_file_name("archived.1");
    std::fs::rename(fx.rot(1), &archive).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !log.available() {
        assert!(Instant::now() < until, "did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(rt.block_on(log.commit(entry(2000))));
    let mut metrics = String::new();
    log.render_metrics(&mut metrics);
    assert!(
        metrics.contains("ward_audit_write_failures_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("ward_audit_available 1\n"), "{metrics}");
    log.close();
    std::fs::rename(&archive, fx.rot(1)).unwrap();
    let v = fx.verify();
    assert!(v.broken.is_none(), "{v:?}");
    assert!(
        v.notes.iter().any(|n| n.contains("could not be written")),
        "{:?}",
        v.notes
    );
}

#[test]
fn a_failed_write_leaves_no_partial_line_and_the_log_resumes() {
    let fx = Fx::new();
    let log = AuditLog::open(fx.opts.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(rt.block_on(log.commit(entry(0))));
    let before = std::fs::read(&fx.log).unwrap();
    faults::inject(&fx.log, 2);
    assert!(!rt.block_on(log.commit(entry(1))));
    assert!(!log.available());
    // Cut back to the last whole entry.
    assert_eq!(std::fs::read(&fx.log).unwrap(), before);
    let until = Instant::now() + Duration::from_secs(10);
    while !log.available() {
        assert!(Instant::now() < until, "did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(rt.block_on(log.commit(entry(2))));
    log.close();
    let v = fx.verify();
    assert!(v.broken.is_none(), "{v:?}");
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("1 entries were not written")),
        "{:?}",
        v.notes
    );
}

#[test]
fn the_log_must_be_writable_and_the_key_kept_safely_and_its_own() {
    #[track_caller]
    fn err(opts: AuditOptions) -> String {
        AuditLog::open(opts).err().expect("opened").0
    }
    let e = err(AuditOptions::new("/dev/full"));
    assert!(
        e.contains("cannot write and sync the audit log /dev/full"),
        "{e}"
    );

    let fx = Fx::new();
    // Readable by others.
    let loose = fx.key.with_file_name("loose.key");
    std::fs::write(&loose, crate::auth::hex(&[2; 32])).unwrap();
    let e = err(AuditOptions {
        key: Some(loose),
        checkpoints: None,
        ..fx.opts.clone()
    });
    assert!(e.contains("may be read by others"), "{e}");
    // Beside the log.
    let beside = fx.log.with_file_name("audit.key");
    write_key(&beside, &crate::auth::hex(&[2; 32]));
    let e = err(AuditOptions {
        key: Some(beside),
        checkpoints: None,
        ..fx.opts.clone()
    });
    assert!(e.contains("inside the log's directory"), "{e}");
    // Checkpoints without a key.
    let e = err(AuditOptions {
        key: None,
        ..fx.opts.clone()
    });
    assert!(e.contains("need a key"), "{e}");

    fx.run(0..6);
    // One writer per log.
    let first = AuditLog::open(fx.opts.clone()).unwrap();
    let e = err(fx.opts.clone());
    assert!(e.contains("in use by another process"), "{e}");
    first.close();
    drop(first);
    // The key evolved on disk; an older copy (a backup) or another key is refused.
    let now = SealKey::load(&fx.key).unwrap();
    assert!(now.epoch >= 2, "epoch {}", now.epoch);
    let other = fx.key.with_file_name("other.key");
    write_key(&other, &crate::auth::hex(&[0x5a; 32]));
    let e = err(AuditOptions {
        key: Some(other.clone()),
        ..fx.opts.clone()
    });
    assert!(
        e.contains("not this log's key, or a key restored from a backup"),
        "{e}"
    );
    // (The last entry is of the epoch before the key's: the close sealed it and evolved.)
    write_key(
        &other,
        &SealKey::new([3; 32])
            .at_epoch(now.epoch - 1)
            .unwrap()
            .file_text(),
    );
    let e = err(AuditOptions {
        key: Some(other),
        ..fx.opts.clone()
    });
    assert!(e.contains("does not seal the last entry"), "{e}");
    // An evolved key does not start a new log.
    let fresh = AuditOptions {
        checkpoints: None,
        ..AuditOptions {
            key: Some(fx.key.clone()),
            ..AuditOptions::new(tempdir().join("new.log"))
        }
    };
    let e = err(fresh);
    assert!(e.contains("a new log needs a new key"), "{e}");
    // Keyed and unkeyed logs do not mix.
    let e = err(AuditOptions {
        key: None,
        checkpoints: None,
        ..fx.opts.clone()
    });
    assert!(e.contains("give --audit-key"), "{e}");
}

#[test]
fn timestamps_are_utc_calendar_dates() {
    assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000Z");
    assert_eq!(timestamp(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    assert_eq!(timestamp(1_795_919_889, 123), "2026-11-29T02:38:09.123Z");
}
