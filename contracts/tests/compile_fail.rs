//! Compile-fail tests: every way of misusing a contract, or of writing a malformed one, is a compile error with
//! the expected text (checked in as `ui/*.stderr`; regenerate with `TRYBUILD=overwrite` after reviewing).

#[test]
fn misuse_and_malformed_contracts_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
