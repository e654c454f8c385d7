// Something that is neither a message nor a state: the error shows both forms.
use contracts::contract;

contract! {
    pub contract Items {
        message Ping(u64);
        initial state Ready { Ping -> Ready }
    }
}

fn main() {}
