// A borrowed payload cannot leave the SIP: one error at the type, before any lifetime error, and no suggestion
// that edits the contract into invalid syntax.
use contracts::contract;

contract! {
    pub contract Packets {
        in message Packet(&[u8]);
        out message Ack;
        initial state Ready { Packet -> Acking }
        state Acking { Ack -> Ready }
    }
}

fn main() {}
