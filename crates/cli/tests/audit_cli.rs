//! `ward keys audit`, `ward audit verify` and `ward serve`'s audit checks, as an operator and an
//! auditor run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use ward_server::{AuditLog, AuditOptions};

fn ward(args: &[&str]) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .current_dir(root)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ward-cli-audit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["log", "secret", "remote", "auditor"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A keyed log with checkpoints, as `ward serve` writes it; returns (log, auditor's key,
/// checkpoints, server's key).
fn keyed_log(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let server_key = dir.join("secret/audit.key");
    let made = ward(&["keys", "audit", "--out", s(&server_key)]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let auditor = dir.join("auditor/initial.key");
    std::fs::write(&auditor, &made.stdout).unwrap();
    let (log, cps) = (dir.join("log/audit.log"), dir.join("remote/checkpoints"));
    for run in 0..2 {
        let audit = AuditLog::open(AuditOptions {
            key: Some(server_key.clone()),
            checkpoints: Some(cps.clone()),
            checkpoint_entries: 3,
            ..AuditOptions::new(&log)
        })
        .unwrap();
        for i in 0..5 {
            let serde_json::Value::Object(e) = json!({"event": "request", "n": run * 10 + i})
            else {
                unreachable!()
            };
            audit.append(e);
        }
        audit.close();
    }
    (log, auditor, cps, server_key)
}

#[test]
fn keys_audit_writes_a_private_key_once_and_prints_the_auditors_copy() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("keys");
    let out = dir.join("secret/audit.key");
    let made = ward(&["keys", "audit", "--out", s(&out)]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let printed = text(&made.stdout);
    assert_eq!(printed.trim().len(), 64, "{printed}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        printed.trim()
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Never overwritten: a lost key leaves a log nobody can verify.
    let again = ward(&["keys", "audit", "--out", s(&out)]);
    assert!(!again.status.success());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        printed.trim()
    );
}

#[test]
fn verify_exits_0_on_an_intact_log_and_1_naming_the_break() {
    let dir = tempdir("verify");
    let (log, auditor, cps, server_key) = keyed_log(&dir);
    let args = |log: &Path| {
        vec![
            "audit".to_string(),
            "verify".into(),
            s(log).into(),
            "--key".into(),
            s(&auditor).into(),
            "--checkpoints".into(),
            s(&cps).into(),
        ]
    };
    let run = |log: &Path| {
        let a = args(log);
        ward(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let ok = run(&log);
    let out = text(&ok.stdout);
    assert!(ok.status.success(), "{out}");
    assert!(
        out.contains("chain intact") && out.contains("checkpoints:"),
        "{out}"
    );

    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let write = |lines: &[String]| {
        std::fs::write(
            &log,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap()
    };
    // The last line removed: only the checkpoints can tell.
    write(&lines[..lines.len() - 1]);
    let bad = run(&log);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stdout).contains("BROKEN:") && text(&bad.stdout).contains("removed from its end"),
        "{}",
        text(&bad.stdout)
    );
    // A middle line edited.
    let mut edited = lines.clone();
    edited[3] = edited[3].replace("\"n\":", "\"n\":1");
    write(&edited);
    let bad = run(&log);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stdout).contains(&format!("{}:4: its MAC does not match", log.display())),
        "{}",
        text(&bad.stdout)
    );
    write(&lines);
    assert!(run(&log).status.success());

    // A keyed log cannot be verified without the key, nor with the server's evolved one.
    let no_key = ward(&["audit", "verify", s(&log)]);
    assert_eq!(no_key.status.code(), Some(1));
    assert!(
        text(&no_key.stdout).contains("--key"),
        "{}",
        text(&no_key.stdout)
    );
    let evolved = ward(&["audit", "verify", s(&log), "--key", s(&server_key)]);
    assert!(!evolved.status.success());
    assert!(
        text(&evolved.stderr).contains("initial key"),
        "{}",
        text(&evolved.stderr)
    );
}

#[test]
fn an_unkeyed_log_verifies_with_a_warning_that_it_proves_little() {
    let dir = tempdir("unkeyed");
    let log = dir.join("log/audit.log");
    AuditLog::open(AuditOptions::new(&log)).unwrap().close();
    let ok = ward(&["audit", "verify", s(&log)]);
    assert!(ok.status.success());
    let out = text(&ok.stdout);
    assert!(
        out.contains("WARNING: this log is not keyed") && out.contains("without --checkpoints"),
        "{out}"
    );
}

#[test]
fn serve_refuses_an_audit_log_it_cannot_write_or_a_key_kept_loosely() {
    let full = ward(&["serve", "--port", "0", "--audit-log", "/dev/full"]);
    assert_eq!(full.status.code(), Some(1));
    let err = text(&full.stderr);
    assert!(
        err.contains("cannot write and sync the audit log /dev/full"),
        "{err}"
    );

    let dir = tempdir("serve");
    let loose = dir.join("secret/loose.key");
    std::fs::write(&loose, "ab".repeat(32)).unwrap();
    let log = dir.join("log/audit.log");
    let refused = ward(&[
        "serve",
        "--port",
        "0",
        "--audit-log",
        s(&log),
        "--audit-key",
        s(&loose),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("may be read by others"),
        "{}",
        text(&refused.stderr)
    );
}
