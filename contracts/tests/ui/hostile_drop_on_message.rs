// An exchangeable type with a `Drop` of its own would run its sender's code wherever it is dropped (in the
// receiver, or when a channel is freed): the derive refuses it.
#![forbid(unsafe_code)]
use contracts::Exchangeable;

#[derive(Exchangeable)]
struct Bomb(u64);

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("running in whoever drops me");
    }
}

fn main() {}
