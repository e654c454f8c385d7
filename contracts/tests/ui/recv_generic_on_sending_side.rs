// Nor can the generic receive or select take an endpoint in a sending state.
use contracts::echo;

fn main() {
    let (client, _server) = echo::channel();
    let _ = channels::recv(client);
}
