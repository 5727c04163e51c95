//! The README's coverage table is what the code really implements.

#[test]
fn readme_coverage_table_matches_the_code() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("coverage")
        .output()
        .expect("run coffer coverage");
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("| CreateBackupVault | implemented |"));
    assert!(table.contains("| ListFrameworks | implemented |"));
    // Every operation of both services is built: the table says so for each, and a probe
    // that found one answering 501 would say "not yet".
    assert!(table.contains("| StartScanJob | implemented |"));
    assert!(table.contains("| StartSearchJob | implemented |"));
    assert!(!table.contains("| not yet |"), "{table}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's coverage table is out of date: run scripts/update-coverage.sh"
    );
}
