use contracts::contract;

contract! {
    pub contract Broken {
        in message Go;
        out message Ack;
        out message Gone;
        initial state Ready { Go -> Acking, Gone -> Done }
        state Acking { Ack -> Ready }
        terminal state Done;
    }
}

fn main() {}
