// Parameters are all named or all positional.
use contracts::contract;

contract! {
    pub contract Mixed {
        in message Put(key: u64, u64);
        out message Done;
        initial state Ready { Put -> Putting }
        state Putting { Done -> Ready }
    }
}

fn main() {}
