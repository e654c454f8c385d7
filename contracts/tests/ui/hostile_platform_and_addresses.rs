// The routes of the old API, closed: no platform hooks, no trusted capability, no block addresses, no
// ownership transfer to an owner of one's choosing.
#![forbid(unsafe_code)]
use channels::{ExAny, ExBox, Owner};

fn main() {
    let platform = channels::platform::current();
    let boxed = ExBox::new([0x41u64; 4]);
    let _address = boxed.block();
    boxed.transfer(Owner::KERNEL);
    ExAny::new(1u8).unwrap().forget_reclaimed();
}
