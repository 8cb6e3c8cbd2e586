//! The audit log against tampering: each case must be found by `verify`, which names where.

use super::files::{oldest_first, rotated};
use super::seal::{seal, SealKey, Sealed, GENESIS};
use super::test_support::*;

/// Tamper with a fresh standard log and expect `verify` to break, saying `want`.
fn caught(name: &str, tamper: impl FnOnce(&Fx), want: &str) {
    let fx = Fx::standard();
    tamper(&fx);
    let v = fx.verify();
    let broken = v
        .broken
        .unwrap_or_else(|| panic!("{name}: not caught ({} entries)", v.entries));
    assert!(broken.contains(want), "{name}: {broken}");
}

fn last(lines: &[String]) -> usize {
    lines.len() - 1
}

#[test]
fn removed_lines_at_the_end_are_found_by_the_checkpoints() {
    let end = "entries were removed from its end";
    caught(
        "delete the last line",
        |fx| fx.edit(&fx.log, |l| drop(l.pop())),
        end,
    );
    caught(
        "delete the last 2 lines",
        |fx| fx.edit(&fx.log, |l| l.truncate(l.len() - 2)),
        end,
    );
    caught(
        "empty the newest file",
        |fx| std::fs::write(&fx.log, "").unwrap(),
        end,
    );
    caught(
        "truncate everything to zero",
        |fx| {
            for (_, p) in rotated(&fx.log) {
                std::fs::remove_file(p).unwrap();
            }
            std::fs::write(&fx.log, "").unwrap();
        },
        "holds no entry",
    );
    caught(
        "delete the newest file and the last rotated one",
        |fx| {
            let n = fx.newest_rotated();
            std::fs::rename(fx.rot(n), &fx.log).unwrap();
        },
        end,
    );
}

#[test]
fn edited_lines_are_found_by_their_mac() {
    let mac = "its MAC does not match";
    caught(
        "edit the last line",
        |fx| {
            fx.edit(&fx.log, |l| {
                let i = last(l);
                l[i] = l[i].replacen("\"r49\"", "\"r48\"", 1)
            })
        },
        mac,
    );
    caught(
        "edit a middle line",
        |fx| {
            fx.edit(&fx.rot(2), |l| {
                l[1] = l[1].replace("\"status\":200", "\"status\":500")
            })
        },
        &format!("audit.log.2:2: {mac}"),
    );
    caught(
        "change a line's seq",
        |fx| {
            fx.edit(&fx.rot(1), |l| {
                l[2] = l[2].replace("\"seq\":2,", "\"seq\":3,")
            })
        },
        "audit.log.1:3:",
    );
}

#[test]
fn lines_that_are_not_entries_are_breaks_anywhere() {
    let not = "not a chain entry";
    for (where_, text) in [
        ("garbage", "garbage".to_string()),
        ("blank", String::new()),
        (
            "forged JSON",
            r#"{"event":"request","status":200}"#.to_string(),
        ),
        (
            "JSON with a prev",
            format!(r#"{{"seq":3,"prev":"{GENESIS}"}}"#),
        ),
    ] {
        let t = text.clone();
        caught(
            &format!("{where_} at the start"),
            |fx| fx.edit(&fx.rot(1), |l| l.insert(0, t)),
            &format!("audit.log.1:1: {not}"),
        );
        let t = text.clone();
        caught(
            &format!("{where_} in the middle"),
            |fx| fx.edit(&fx.rot(2), |l| l.insert(2, t)),
            &format!("audit.log.2:3: {not}"),
        );
        caught(
            &format!("{where_} at the end"),
            |fx| fx.edit(&fx.log, |l| l.push(text)),
            not,
        );
    }
    caught(
        "two lines joined",
        |fx| {
            fx.edit(&fx.rot(1), |l| {
                let second = l.remove(2);
                l[1].push_str(&second);
            })
        },
        "audit.log.1:2: not a chain entry",
    );
    caught(
        "a torn line at the end of a rotated file",
        |fx| {
            let text = std::fs::read_to_string(fx.rot(1)).unwrap();
            std::fs::write(fx.rot(1), &text[..text.len() - 1]).unwrap();
        },
        "torn line at the end of a rotated file",
    );
}

#[test]
fn reordered_duplicated_and_swapped_entries_are_breaks() {
    let order = "where entry";
    caught(
        "swap two lines",
        |fx| fx.edit(&fx.rot(2), |l| l.swap(1, 2)),
        order,
    );
    caught(
        "duplicate a line",
        |fx| fx.edit(&fx.rot(2), |l| l.insert(1, l[1].clone())),
        order,
    );
    caught(
        "swap two rotated files",
        |fx| {
            let tmp = fx.log.with_extension("swap");
            std::fs::rename(fx.rot(1), &tmp).unwrap();
            std::fs::rename(fx.rot(2), fx.rot(1)).unwrap();
            std::fs::rename(&tmp, fx.rot(2)).unwrap();
        },
        "audit.log.1:1:",
    );
}

#[test]
fn removed_and_planted_files_are_breaks() {
    caught(
        "delete the newest file",
        |fx| std::fs::remove_file(&fx.log).unwrap(),
        "is missing: the newest file",
    );
    caught(
        "delete the newest file and plant an empty rotated one",
        |fx| {
            std::fs::remove_file(&fx.log).unwrap();
            std::fs::write(fx.rot(fx.newest_rotated() + 1), "").unwrap();
        },
        "is missing: the newest file",
    );
    caught(
        "empty the newest file and plant an empty rotated one",
        |fx| {
            std::fs::write(fx.rot(fx.newest_rotated() + 1), "").unwrap();
        },
        "holds no entry: rotation never leaves an empty file",
    );
    caught(
        "delete a middle rotated file",
        |fx| std::fs::remove_file(fx.rot(2)).unwrap(),
        "audit.log.2 is missing",
    );
    caught(
        "delete the oldest rotated file",
        |fx| std::fs::remove_file(fx.rot(1)).unwrap(),
        "no retention entry records deleting the files before it",
    );
    caught(
        "delete the oldest file and renumber the rest",
        |fx| {
            let n = fx.newest_rotated();
            std::fs::remove_file(fx.rot(1)).unwrap();
            for i in 2..=n {
                std::fs::rename(fx.rot(i), fx.rot(i - 1)).unwrap();
            }
        },
        "audit.log.1:1:",
    );
}

#[test]
fn a_chain_recomputed_without_the_right_key_is_found() {
    caught(
        "recompute with plain sha256",
        |fx| fx.reseal(0, None),
        "audit.log.1:1: not sealed with the key",
    );
    let wrong = SealKey::new([1; 32]);
    caught(
        "recompute with a wrong key",
        |fx| {
            // The same epochs as the real chain, each under the wrong key's epoch.
            let mut prev = GENESIS.to_string();
            for file in oldest_first(&fx.log) {
                fx.edit(&file, |lines| {
                    for l in lines.iter_mut() {
                        let e = Sealed::parse(l.as_bytes()).unwrap();
                        let k = wrong.at_epoch(e.epoch.unwrap()).unwrap();
                        let (line, mac) = seal(e.fields, e.seq, &prev, Some(&k));
                        (*l, prev) = (line, mac);
                    }
                });
            }
        },
        "audit.log.1:1: its MAC does not match",
    );
    // The server's key, stolen now, is of a later epoch: forward security.
    caught(
        "re-seal history with the stolen current key",
        |fx| fx.reseal(1, Some(&SealKey::load(&fx.key).unwrap())),
        "audit.log.1:2: its key epoch jumps",
    );
    caught(
        "re-seal everything with the stolen current key",
        |fx| fx.reseal(0, Some(&SealKey::load(&fx.key).unwrap())),
        "audit.log.1:1: the chain's first entry is of key epoch",
    );
}

#[test]
fn the_checkpoints_file_cannot_be_rolled_back_or_edited() {
    let fx = Fx::new();
    fx.run(0..25);
    let old = std::fs::read(&fx.cps).unwrap();
    fx.run(25..50);
    std::fs::write(&fx.cps, old).unwrap();
    let broken = fx.verify().broken.expect("replayed checkpoints not caught");
    assert!(broken.contains("later checkpoints are missing"), "{broken}");

    caught(
        "delete the last 2 checkpoints",
        |fx| fx.edit(&fx.cps, |l| l.truncate(l.len() - 2)),
        "later checkpoints are missing",
    );
    caught(
        "empty the checkpoints file",
        |fx| std::fs::write(&fx.cps, "").unwrap(),
        "checkpoints end at epoch none",
    );
    caught(
        "edit a checkpoint",
        |fx| {
            fx.edit(&fx.cps, |l| {
                l[0] = l[0].replace("\"entries\":", "\"entries\":1")
            })
        },
        "checkpoints:1: its MAC does not match",
    );
    caught(
        "reorder checkpoints",
        |fx| fx.edit(&fx.cps, |l| l.swap(0, 1)),
        "checkpoints:1:",
    );
    caught(
        "garbage in the checkpoints",
        |fx| fx.edit(&fx.cps, |l| l.insert(1, "{}".into())),
        "checkpoints:2: not a checkpoint",
    );
}

/// An epoch forged far ahead is refused before the key is derived that far: each epoch costs an
/// HMAC, and 10^15 of them kept `verify` busy for ever (found with an input written for
/// fuzz/fuzz_targets/audit_verify.rs).
#[test]
fn an_epoch_forged_far_ahead_is_refused_at_once() {
    let far = |line: &str| {
        let (head, rest) = line.split_once("\"epoch\":").unwrap();
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap();
        format!("{head}\"epoch\":1000000000000000{}", &rest[digits..])
    };
    caught(
        "a checkpoint of epoch 10^15",
        |fx| fx.edit(&fx.cps, |l| l[1] = far(&l[1])),
        "checkpoints:2: its key epoch 1000000000000000 is more than",
    );
    // The chain's first entry where the oldest files were deleted: nothing before it to follow.
    caught(
        "the first entry present, of epoch 10^15",
        |fx| {
            std::fs::remove_file(fx.rot(1)).unwrap();
            fx.edit(&fx.rot(2), |l| l[0] = far(&l[0]));
        },
        "audit.log.2:1: its key epoch 1000000000000000 is more than",
    );
}
