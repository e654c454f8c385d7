//! In-kernel self-tests: registered with a linkme distributed slice, run by the shell's `selftest` (through the
//! kernel ABI's `run_selftests`).
//!
//! Adding a test is writing one function inside [`selftest!`](crate::selftest) next to the code it checks; there
//! is no list to edit. Each test returns `Ok(())` or a message saying what went wrong; the runner prints one
//! line per test and a final `selftest: N passed, M failed`.

use alloc::string::String;

/// A registered self-test.
pub struct SelfTest {
    /// `module::function`, as printed.
    pub name: &'static str,
    /// The test body.
    pub run: fn() -> Result<(), String>,
}

/// Every self-test linked into the kernel.
#[linkme::distributed_slice]
pub static SELFTESTS: [SelfTest];

/// Declares a self-test: `selftest! { /// doc \n fn name() { ...; Ok(()) } }`.
#[macro_export]
macro_rules! selftest {
    ($(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        fn $name() -> Result<(), alloc::string::String> $body

        const _: () = {
            #[linkme::distributed_slice($crate::selftest::SELFTESTS)]
            static TEST: $crate::selftest::SelfTest = $crate::selftest::SelfTest {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: $name,
            };
        };
    };
}

/// Fails the enclosing self-test with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(alloc::format!($($msg)+));
        }
    };
}

/// Outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Tests that returned `Ok`.
    pub passed: usize,
    /// Tests that returned an error.
    pub failed: usize,
}

/// Runs every test whose name contains `filter` (all when empty), writing one line each and the summary through
/// `print` (this layer is below the console, so the caller says where the report goes).
pub fn run(filter: &str, print: impl Fn(core::fmt::Arguments<'_>)) -> Summary {
    let mut summary = Summary { passed: 0, failed: 0 };
    let name = |t: &SelfTest| t.name.strip_prefix("kernel::").unwrap_or(t.name);
    for test in SELFTESTS.iter().filter(|t| name(t).contains(filter)) {
        match (test.run)() {
            Ok(()) => {
                summary.passed += 1;
                print(format_args!("selftest {} ... ok\n", name(test)));
            }
            Err(why) => {
                summary.failed += 1;
                print(format_args!("selftest {} ... FAILED: {why}\n", name(test)));
            }
        }
    }
    print(format_args!("selftest: {} passed, {} failed\n", summary.passed, summary.failed));
    summary
}
