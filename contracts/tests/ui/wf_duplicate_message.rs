use contracts::contract;

contract! {
    pub contract Broken {
        in message Go;
        out message Ack;
        initial state Ready { Go -> Acking, Go -> Ready }
        state Acking { Ack -> Ready }
    }
}

fn main() {}
