// In `Ready` the client must send: it has no `recv`.
use contracts::echo;

fn main() {
    let (client, _server) = echo::channel();
    let _ = client.recv();
}
