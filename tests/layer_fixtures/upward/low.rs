//! The bottom, naming what is above it in every form.

use crate::high;

pub fn f() -> u32 {
    let _ = format_args!("{}", crate::high::VALUE);
    // crate::left::f() in a comment is no path.
    let text = "crate::left::f()";
    fn g() -> crate::left::Thing {
        crate::up!()
    }
    text.len() as u32
}

mod nested;
