// Messages carry owned, tree-shaped exchange-heap data: `std::sync::Arc<u8>` may not travel.
use contracts::contract;

contract! {
    pub contract Leaky {
        in message Leak(std::sync::Arc<u8>);
        out message Ack;
        initial state Ready { Leak -> Acking }
        state Acking { Ack -> Ready }
    }
}

fn main() {}
