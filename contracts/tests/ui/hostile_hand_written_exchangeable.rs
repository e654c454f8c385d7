// A service writes `Exchangeable` by hand to lie about what its type holds (a block it keeps, a pointer into
// its own heap): the trait is `unsafe`, and services forbid `unsafe`, so only the trusted derive implements it.
#![forbid(unsafe_code)]

struct Liar(&'static [u8]);

unsafe impl channels::Exchangeable for Liar {
    const __TRACKED: bool = false;
    fn __visit(&self, _: &mut channels::Walk<'_>) {}
}

fn main() {}
