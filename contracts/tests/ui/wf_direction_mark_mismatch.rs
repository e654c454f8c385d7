// A Sing# direction mark that contradicts the message's declaration: `Ask` is an `in` message (the client sends
// it, the server receives it: `Ask?`).
use contracts::contract;

contract! {
    pub contract Marks {
        in message Ask;
        out message Answer;
        initial state Ready { Ask! -> Asked }
        state Asked { Answer! -> Ready }
    }
}

fn main() {}
