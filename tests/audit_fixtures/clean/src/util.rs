//! A submodule: audited like the crate root, but it needs no `forbid` of its own.

/// Doubles `n` (a closure, a block and a local `let` are all fine).
pub fn twice(n: usize) -> usize {
    let double = |x: usize| {
        let y = x;
        y * 2
    };
    double(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles() {
        assert_eq!(super::twice(2), 4);
    }
}
