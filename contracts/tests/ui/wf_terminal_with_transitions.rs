use contracts::contract;

contract! {
    pub contract Broken {
        in message Go;
        out message Ack;
        initial state Ready { Go -> Acking }
        terminal state Acking { Ack -> Ready }
    }
}

fn main() {}
