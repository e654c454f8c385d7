// ... and for its endpoints: a `Drop` on `Server` would run the crate's code wherever the endpoint travels.
#![forbid(unsafe_code)]
use contracts::contract;

contract! {
    pub contract Trap {
        in message Go(u64);
        initial state Start { Go -> Done }
        terminal state Done;
    }
}

impl<S: channels::State> Drop for trap::Server<S> {
    fn drop(&mut self) {}
}

fn main() {}
