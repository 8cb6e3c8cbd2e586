//! Under the `cuda` feature, compile every `kernels/cuda/*.cu` to PTX (compute_80: Ampere and
//! later, JIT-compiled by the driver for the GPU at hand) and embed it (`src/cuda/mod.rs`).
//! nvcc is `$NVCC`, else the one `scripts/check-cuda.sh` installs into `.venv-cuda`, else
//! `$CUDA_HOME/bin/nvcc`, else `nvcc` on the PATH. Without the feature this does nothing, so
//! the default build needs no CUDA at all.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../..");
    let sources = root.join("kernels/cuda");
    println!("cargo:rerun-if-changed={}", sources.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let nvcc = find_nvcc(&root);
    let bin = nvcc.parent().unwrap_or(Path::new(".")).to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&sources)
        .unwrap_or_else(|e| panic!("reading {}: {e}", sources.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    files.sort();
    let mut modules = String::from(
        "/// Each kernel file's name and PTX.\npub const MODULES: &[(&str, &str)] = &[\n",
    );
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let ptx = out.join(format!("{name}.ptx"));
        let run = Command::new(&nvcc)
            .env("PATH", &path)
            .args(["-ptx", "-arch=compute_80", "-Werror", "all-warnings", "-I"])
            .arg(bin.join("../include"))
            .arg(file)
            .arg("-o")
            .arg(&ptx)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running {} (set NVCC, or run scripts/check-cuda.sh once): {e}",
                    nvcc.display()
                )
            });
        assert!(
            run.status.success(),
            "nvcc failed on {}:\n{}",
            file.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        modules += &format!(
            "    (\"{name}\", include_str!(concat!(env!(\"OUT_DIR\"), \"/{name}.ptx\"))),\n"
        );
    }
    modules += "];\n";
    std::fs::write(out.join("cuda_ptx.rs"), modules).unwrap();
}

fn find_nvcc(root: &Path) -> PathBuf {
    if let Some(nvcc) = std::env::var_os("NVCC") {
        return PathBuf::from(nvcc);
    }
    let venv = root.join(".venv-cuda/lib");
    if let Ok(entries) = std::fs::read_dir(&venv) {
        for python in entries.flatten() {
            let nvcc = python.path().join("site-packages/nvidia/cu13/bin/nvcc");
            if nvcc.is_file() {
                return nvcc;
            }
        }
    }
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        return PathBuf::from(home).join("bin/nvcc");
    }
    PathBuf::from("nvcc")
}
