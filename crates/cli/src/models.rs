//! `ward pull NAME` and `ward list`: the models of models/registry.toml, fetched from the
//! Hugging Face Hub (resumable, with a progress bar) or imported from a file copied in by hand
//! (air-gapped sites), and never put in place unless their sha256 matches the pin.
//!
//! A verified file gets a stamp beside it (`.NAME.verified`: hash, size and modification
//! time), so `ward list` can say "verified" without re-reading gigabytes; `ward list --verify`
//! hashes every present file again.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use ward_models::registry::{file_sha256, file_sha256_with_progress, Entry, Registry, Runnable};

#[derive(Args)]
pub struct PullArgs {
    /// A model's name in models/registry.toml (`ward list` shows them).
    name: String,
    /// Import this local file instead of downloading (for sites without Internet access).
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// The file's sha256, for an entry the registry has not pinned yet (read it off the file's
    /// page on the Hub). Must equal the registry's pin where there is one.
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
}

#[derive(Args)]
pub struct ListArgs {
    /// Hash every present file again instead of trusting its stamp.
    #[arg(long)]
    verify: bool,
    /// Print one JSON array instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn pull(a: PullArgs) -> anyhow::Result<()> {
    let registry = Registry::load(&Registry::find_dir()?)?;
    let entry = registry.entry(&a.name).with_context(|| {
        format!(
            "unknown model {:?}; known models: {}",
            a.name,
            registry.names()
        )
    })?;
    let pin = pin_for(entry, a.sha256.as_deref())?;
    let dest = registry.path_of(entry);
    if dest.is_file() && hash(&dest)? == pin {
        stamp(&dest, &pin)?;
        println!(
            "{}: already present and verified ({})",
            entry.name,
            dest.display()
        );
        return Ok(());
    }
    let staged = match &a.from {
        Some(file) => import(file, &dest)?,
        None => download(entry, &registry.dir, &pin)?,
    };
    let got = hash(&staged)?;
    if got != pin {
        let _ = std::fs::remove_file(&staged);
        bail!(
            "refused: the file's sha256 is {got}, but {} is pinned to {pin}; nothing was installed",
            entry.name
        );
    }
    std::fs::rename(&staged, &dest)
        .with_context(|| format!("moving the verified file to {}", dest.display()))?;
    stamp(&dest, &pin)?;
    println!(
        "{}: verified sha256 {pin}; saved as {}",
        entry.name,
        dest.display()
    );
    Ok(())
}

/// A file's sha256, with its progress on stderr for a large one (a multi-GB model takes a
/// while): a line redrawn on a terminal, a line per tenth otherwise.
fn hash(file: &Path) -> anyhow::Result<String> {
    use std::io::{IsTerminal, Write};
    const LARGE: u64 = 64 << 20;
    let terminal = std::io::stderr().is_terminal();
    let mut shown = 0;
    let sha = file_sha256_with_progress(file, |done, size| {
        let tenths = done * 10 / size.max(1);
        if size < LARGE || tenths == shown {
            return;
        }
        shown = tenths;
        let (end, gb) = (if terminal { "\r" } else { "\n" }, 1e9);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "hashing {}: {:3}% of {:.1} GB{end}",
            file.display(),
            tenths * 10,
            size as f64 / gb
        );
        if terminal && done == size {
            let _ = writeln!(err);
        }
    })
    .with_context(|| format!("hashing {}", file.display()))?;
    Ok(sha)
}

/// The hash the file must have: the registry's pin, or the operator's for an unpinned entry.
fn pin_for(entry: &Entry, given: Option<&str>) -> anyhow::Result<String> {
    let given = given.map(str::to_ascii_lowercase);
    if let Some(g) = &given {
        if g.len() != 64 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--sha256 must be 64 hex digits");
        }
    }
    match (&entry.sha256, given) {
        (Some(pin), Some(g)) if !pin.eq_ignore_ascii_case(&g) => bail!(
            "--sha256 {g} differs from the registry's pin {pin} for {}",
            entry.name
        ),
        (Some(pin), _) => Ok(pin.to_ascii_lowercase()),
        (None, Some(g)) => Ok(g),
        (None, None) => bail!(
            "{} has no pinned sha256 in the registry yet: read the file's SHA256 off its page on \
             the Hugging Face Hub and give it with --sha256 (or pin it in registry.toml)",
            entry.name
        ),
    }
}

/// Copy `file` next to `dest` (same file system, so the final rename is atomic).
fn import(file: &Path, dest: &Path) -> anyhow::Result<PathBuf> {
    let staged = sibling(dest, ".import");
    std::fs::copy(file, &staged)
        .with_context(|| format!("copying {} to {}", file.display(), staged.display()))?;
    Ok(staged)
}

/// Download the entry's file with hf-hub into `models/.hf` (an interrupted download resumes
/// from there), and hand back the downloaded file.
fn download(entry: &Entry, models: &Path, pin: &str) -> anyhow::Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};
    let Some(hf) = &entry.hf else {
        bail!(
            "{} has no download source in the registry; copy the file in and use --from",
            entry.name
        );
    };
    let mut builder = ApiBuilder::from_env()
        .with_cache_dir(models.join(".hf"))
        .with_retries(5)
        .with_progress(true);
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let api = builder
        .build()
        .context("setting up the Hugging Face client")?;
    let revision = hf.revision.clone().unwrap_or_else(|| "main".into());
    let repo = api.repo(Repo::with_revision(
        hf.repo.clone(),
        RepoType::Model,
        revision,
    ));
    // The Hub names a large file by its sha256: a different file is refused before it is fetched.
    let meta = api.metadata(&repo.url(&hf.file)).with_context(|| {
        format!(
            "asking the Hugging Face Hub about {}/{}: the Hub cannot be reached from here, or \
             refused; on a site without Internet access copy the file in by hand and run `ward \
             pull {} --from FILE`",
            hf.repo, hf.file, entry.name
        )
    })?;
    let etag = meta.etag();
    if etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit()) && etag != pin {
        bail!(
            "refused: the Hub's {}/{} has sha256 {etag}, but {} is pinned to {pin}",
            hf.repo,
            hf.file,
            entry.name
        );
    }
    eprintln!(
        "downloading {} from {}/{} ({} bytes)",
        entry.name,
        hf.repo,
        hf.file,
        meta.size()
    );
    let pointer = repo
        .download(&hf.file)
        .with_context(|| format!("downloading {}/{}", hf.repo, hf.file))?;
    let blob = std::fs::canonicalize(&pointer)?;
    let staged = sibling(&models.join(&entry.file), ".download");
    std::fs::rename(&blob, &staged)?;
    // The rest of hf-hub's cache for this repo now points at nothing.
    let _ = std::fs::remove_dir_all(
        models
            .join(".hf")
            .join(format!("models--{}", hf.repo.replace('/', "--"))),
    );
    Ok(staged)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where the stamp of a verified file lives: `.FILE.verified` beside it.
fn stamp_path(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.with_file_name(format!(".{name}.verified"))
}

/// What identifies a file's contents cheaply: its size and modification time.
fn identity(file: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(file)?;
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{} {mtime}", meta.len()))
}

fn stamp(file: &Path, sha256: &str) -> anyhow::Result<()> {
    std::fs::write(stamp_path(file), format!("{sha256} {}\n", identity(file)?))?;
    Ok(())
}

/// The hash a stamp vouches for, if the file is unchanged since it was stamped.
fn stamped(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(stamp_path(file)).ok()?;
    let (sha, id) = text.trim().split_once(' ')?;
    (identity(file).ok()? == id).then(|| sha.to_string())
}

pub fn list(a: ListArgs) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let registry = Registry::load(&Registry::find_dir()?)?;
    let mut table = format!(
        "{:<30} {:<8} {:>8}  {:<18} {:<5} {}\n",
        "NAME", "ARCH", "CONTEXT", "STATE", "RUNS", "LICENCE / DESCRIPTION"
    );
    let mut rows = Vec::new();
    let mut failed = false;
    let mut cannot = String::new();
    for entry in &registry.models {
        let runnable = registry.can_run(entry);
        let runs = match &runnable {
            Runnable::Yes => "yes",
            // Not downloaded: its architecture is one Ward runs.
            Runnable::ByArchitecture => "arch",
            Runnable::No(why) => {
                let _ = writeln!(cannot, "  {}: {why}", entry.name);
                "no"
            }
        };
        let path = registry.path_of(entry);
        let state = if !path.is_file() {
            "absent".to_string()
        } else {
            let sha = if a.verify {
                let sha = file_sha256(&path)?;
                if entry.sha256.as_deref() == Some(sha.as_str()) {
                    stamp(&path, &sha)?;
                }
                Some(sha)
            } else {
                stamped(&path)
            };
            match (sha, &entry.sha256) {
                (None, _) => "present, unchecked".into(),
                (Some(s), Some(pin)) if s.eq_ignore_ascii_case(pin) => "verified".into(),
                (Some(_), Some(_)) => {
                    failed = true;
                    "HASH MISMATCH".into()
                }
                (Some(_), None) => "present, unpinned".into(),
            }
        };
        rows.push(serde_json::json!({
            "name": entry.name,
            "architecture": entry.architecture,
            "context_length": entry.context_length,
            "file": path.display().to_string(),
            "sha256": entry.sha256,
            "state": state,
            "runs": runs,
            "why_not": match runnable {
                Runnable::No(why) => Some(why.to_string()),
                _ => None,
            },
            "license": entry.license,
            "description": entry.description,
        }));
        let context = entry.context_length.map_or("-".into(), |c| c.to_string());
        let about = entry.description.as_deref().unwrap_or("");
        let _ = writeln!(
            table,
            "{:<30} {:<8} {:>8}  {:<18} {runs:<5} {} / {about}",
            entry.name, entry.architecture, context, state, entry.license
        );
    }
    table.push_str(
        "\nRUNS: yes = this build runs the file here; arch = not downloaded, its architecture is \
         one Ward runs (the file itself is checked when loaded)\n",
    );
    if !cannot.is_empty() {
        table.push_str("Models this build cannot run:\n");
        table.push_str(&cannot);
    }
    if a.json {
        table = serde_json::Value::Array(rows).to_string() + "\n";
    }
    // A reader that stops early (`| head`) is not an error.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), table.as_bytes());
    if failed {
        bail!("some files do not match their pinned sha256: run `ward pull NAME` to replace them");
    }
    Ok(())
}
