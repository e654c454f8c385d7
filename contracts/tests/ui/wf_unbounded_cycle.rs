// The client could send `Item` forever without hearing back: the server's queue would be unbounded.
use contracts::contract;

contract! {
    pub contract Firehose {
        in message Item(u64);
        in message Stop;
        out message Bye;
        initial state Ready { Item -> More, Stop -> Stopping }
        state More { Item -> Ready }
        state Stopping { Bye -> Done }
        terminal state Done;
    }
}

fn main() {}
