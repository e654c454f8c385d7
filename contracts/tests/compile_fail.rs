//! Compile-fail tests: every way of misusing a contract, or of writing a malformed one, is a compile error with
//! the expected text (checked in as `ui/*.stderr`; regenerate with `TRYBUILD=overwrite` after reviewing).

use std::process::Command;

const NAME: &str = "misuse_and_malformed_contracts_do_not_compile";

#[test]
fn misuse_and_malformed_contracts_do_not_compile() {
    // trybuild builds the cases in a project under the target directory. When that directory lies outside this
    // workspace (CARGO_TARGET_DIR elsewhere), cargo misses the workspace's `.cargo/config.toml`, which enables the
    // `bindeps` feature the root manifest needs; so run this test again with that setting in the environment.
    if std::env::var_os("CARGO_UNSTABLE_BINDEPS").is_none() {
        let exe = std::env::current_exe().expect("test binary path");
        let status = Command::new(exe)
            .args(["--exact", NAME, "--nocapture"])
            .env("CARGO_UNSTABLE_BINDEPS", "true")
            .status()
            .expect("re-run the test binary");
        assert!(status.success(), "compile-fail cases failed (see the output above)");
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
