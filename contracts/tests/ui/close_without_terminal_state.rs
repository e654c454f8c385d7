// A contract with no terminal state never ends with `close`: the error says so.
use contracts::contract;

contract! {
    pub contract Forever {
        in message Tick;
        out message Tock;
        initial state Ready { Tick -> Ticked }
        state Ticked { Tock -> Ready }
    }
}

fn main() {
    let (client, _server) = forever::channel();
    client.close();
}
