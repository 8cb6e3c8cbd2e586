//! The audit log through crashes, retention, the disk budget, failing writes and the checks
//! made when it opens.

use std::time::{Duration, Instant};

use super::files::{oldest_first, rotated};
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

/// Write `n` entries of the same prompt and output, one sync each, and read the log's lines.
fn same_prompt_entries(opts: AuditOptions, n: u64) -> Vec<Value> {
    let path = opts.path.clone();
    let log = AuditLog::open(opts).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let prompt = serde_json::json!([{"role": "user", "content": "Is patient 4711 HIV positive?"}]);
    for i in 0..n {
        let content = Content::new(Some(&prompt), vec!["No.".into()]);
        assert!(rt.block_on(log.commit_with(entry(i), Some(content))));
    }
    log.close();
    oldest_first(&path)
        .iter()
        .flat_map(|f| read_lines(f))
        .map(|l| serde_json::from_str::<Value>(&l).unwrap())
        .filter(|e| e["event"] == "request")
        .collect()
}

const GUESS: &str = r#"[{"content":"Is patient 4711 HIV positive?","role":"user"}]"#;

#[test]
fn a_keyed_log_hashes_content_under_each_entrys_epoch_key() {
    let fx = Fx::new();
    let entries = same_prompt_entries(fx.opts.clone(), 6);
    assert_eq!(entries.len(), 6);
    let text: String = oldest_first(&fx.log)
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    // Nobody without the key can confirm the guess: its plain hash is nowhere.
    let plain = crate::auth::sha256_hex(GUESS.as_bytes());
    assert!(!text.contains(&plain) && !text.contains("sha256"), "{text}");
    let mut epochs = Vec::new();
    for e in &entries {
        let epoch = e["epoch"].as_u64().unwrap();
        let k = fx.k0.at_epoch(epoch).unwrap();
        let want = crate::auth::hex(&k.content_mac(GUESS.as_bytes()));
        assert_eq!(e["prompt_hmac"], want.as_str(), "{e}");
        assert_eq!(
            e["output_hmac"],
            serde_json::json!([crate::auth::hex(&k.content_mac(b"No."))])
        );
        epochs.push((epoch, want));
    }
    // A checkpoint (4 entries) moved the key on: the same prompt hashes differently after it,
    // so a key stolen now confirms nothing about earlier epochs' entries.
    let (first, last) = (&epochs[0], &epochs[epochs.len() - 1]);
    assert!(last.0 > first.0, "{epochs:?}");
    assert_ne!(first.1, last.1);
    assert!(fx.verify().broken.is_none());

    // The auditor's check, with the initial key carried forward to the entry's epoch.
    let prompt: Value = serde_json::from_str(GUESS).unwrap();
    for e in [&entries[0], &entries[5]] {
        let seq = e["seq"].as_u64().unwrap();
        let c = check(&fx.log, seq, Some(&fx.k0), Some(&prompt), Some("No.")).unwrap();
        assert!(
            c.seal_ok && c.prompt == Some(true) && c.output == Some(Some(0)),
            "{c:?}"
        );
        let other: Value =
            serde_json::json!([{"role": "user", "content": "Is patient 4712 HIV positive?"}]);
        let c = check(&fx.log, seq, Some(&fx.k0), Some(&other), Some("Yes.")).unwrap();
        assert!(c.prompt == Some(false) && c.output == Some(None), "{c:?}");
    }
    let seq = entries[0]["seq"].as_u64().unwrap();
    let wrong = SealKey::new([1; 32]);
    let c = check(&fx.log, seq, Some(&wrong), Some(&prompt), None).unwrap();
    assert!(!c.seal_ok && c.prompt == Some(false), "{c:?}");
    let e = check(&fx.log, seq, None, Some(&prompt), None).unwrap_err();
    assert!(e.contains("--key"), "{e}");
    let later = fx
        .k0
        .at_epoch(entries[5]["epoch"].as_u64().unwrap())
        .unwrap();
    let e = check(&fx.log, seq, Some(&later), Some(&prompt), None).unwrap_err();
    assert!(e.contains("initial key"), "{e}");
    assert!(check(&fx.log, 999, Some(&fx.k0), Some(&prompt), None)
        .unwrap_err()
        .contains("no entry with seq 999"));
}

#[test]
fn two_keys_hash_the_same_prompt_differently() {
    let (a, b) = (Fx::new(), Fx::new());
    write_key(&b.key, &crate::auth::hex(&[0x6b; 32]));
    let ha = same_prompt_entries(a.opts.clone(), 1);
    let hb = same_prompt_entries(b.opts.clone(), 1);
    assert_eq!(
        (ha[0]["epoch"].as_u64(), hb[0]["epoch"].as_u64()),
        (Some(0), Some(0))
    );
    assert_ne!(ha[0]["prompt_hmac"], hb[0]["prompt_hmac"]);
    assert_ne!(ha[0]["output_hmac"], hb[0]["output_hmac"]);
    let b0 = SealKey::new([0x6b; 32]);
    let want = crate::auth::hex(&b0.content_mac(GUESS.as_bytes()));
    assert_eq!(hb[0]["prompt_hmac"], want.as_str());
}

#[test]
fn an_unkeyed_log_keeps_plain_guessable_hashes() {
    let path = tempdir().join("audit.log");
    let entries = same_prompt_entries(AuditOptions::new(&path), 2);
    let plain = crate::auth::sha256_hex(GUESS.as_bytes());
    for e in &entries {
        assert_eq!(e["prompt_sha256"], plain.as_str());
        assert_eq!(
            e["output_sha256"],
            serde_json::json!([crate::auth::sha256_hex(b"No.")])
        );
        assert!(e.get("prompt_hmac").is_none());
    }
    let prompt: Value = serde_json::from_str(GUESS).unwrap();
    let seq = entries[1]["seq"].as_u64().unwrap();
    let c = check(&path, seq, None, Some(&prompt), Some("No.")).unwrap();
    assert!(c.seal_ok && c.epoch.is_none() && c.prompt == Some(true) && c.output == Some(Some(0)));
    let e = check(
        &path,
        seq,
        Some(&SealKey::new([1; 32])),
        Some(&prompt),
        None,
    )
    .unwrap_err();
    assert!(e.contains("not keyed"), "{e}");
}
