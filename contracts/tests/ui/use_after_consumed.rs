// Sending consumes the endpoint: the old state cannot be used again.
use contracts::echo;

fn main() {
    let (client, _server) = echo::channel();
    let _waiting = client.send_ping(1);
    let _again = client.send_ping(2);
}
