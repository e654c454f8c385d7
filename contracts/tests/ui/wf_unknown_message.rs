use contracts::contract;

contract! {
    pub contract Broken {
        in message Go;
        out message Ack;
        initial state Ready { Go -> Acking }
        state Acking { Akc -> Ready }
    }
}

fn main() {}
