use contracts::contract;

contract! {
    pub contract Broken {
        in message Go;
        initial state Ready { Go -> Stuck }
        state Stuck;
    }
}

fn main() {}
