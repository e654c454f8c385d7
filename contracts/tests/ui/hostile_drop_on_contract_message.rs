// The same for a contract's generated message structs: a `Drop` added anywhere in the crate conflicts with
// the contract's guard.
#![forbid(unsafe_code)]
use contracts::contract;

contract! {
    pub contract Trap {
        in message Go(u64);
        initial state Start { Go -> Done }
        terminal state Done;
    }
}

impl Drop for trap::msg::Go {
    fn drop(&mut self) {}
}

fn main() {}
