// Sing# writes a sequence in one transition (`A? -> B! -> S`); here each step has a named state, and the error
// shows that form.
use contracts::contract;

contract! {
    pub contract Seq {
        in message Ask;
        out message Answer;
        initial state Ready { Ask? -> Answer! -> Ready }
    }
}

fn main() {}
