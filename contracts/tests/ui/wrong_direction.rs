// `Pong` is an `out` message: the server sends it, never the client.
use contracts::echo;

fn main() {
    let (client, _server) = echo::channel();
    let _ = client.send_pong(1);
}
