//! The README's table of deployed medical models is true: every model it lists is in the
//! registry under the same architecture, and Ward implements that architecture.

mod common;

use ward_models::registry::{Registry, Runnable};
use ward_models::Arch;

#[test]
fn the_readme_lists_only_models_ward_runs() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- deployed-models")
        .expect("the README's deployed-models table");
    let end = readme[start..].find("<!-- end deployed-models").unwrap() + start;
    let registry = Registry::load(&common::root().join("models")).unwrap();
    let mut rows = 0;
    for line in readme[start..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (name, arch) = (cells[1].trim_matches('`'), cells[2]);
        let entry = registry
            .entry(name)
            .unwrap_or_else(|| panic!("{name} is in the README but not the registry"));
        assert_eq!(entry.architecture, arch, "{name}'s architecture");
        assert!(
            Arch::from_name(arch).is_some(),
            "{name}: {arch} is not implemented"
        );
        let runs = registry.can_run(entry);
        assert!(
            matches!(runs, Runnable::Yes | Runnable::ByArchitecture),
            "{name}: {runs:?}"
        );
        rows += 1;
    }
    assert!(rows >= 10, "only {rows} rows found in the README's table");
    // And every registry model of an implemented architecture is in the table or a test model.
    for e in &registry.models {
        let listed = readme[start..end].contains(&format!("`{}`", e.name));
        let test_model = e
            .description
            .as_deref()
            .is_some_and(|d| d.starts_with("Test model"));
        assert!(
            listed || test_model,
            "{} is in the registry but not the README",
            e.name
        );
    }
}
