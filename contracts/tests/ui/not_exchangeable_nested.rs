// A non-exchangeable type nested in an exchangeable one: one error, at the type, naming no internal item.
use contracts::contract;

contract! {
    pub contract Nested {
        in message Batch(channels::ExVec<std::rc::Rc<u8>>, Option<(u32, std::cell::Cell<u8>)>);
        out message Ack;
        initial state Ready { Batch -> Acking }
        state Acking { Ack -> Ready }
    }
}

fn main() {}
