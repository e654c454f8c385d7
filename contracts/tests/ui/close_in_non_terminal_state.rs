// `close` exists only in terminal states.
use contracts::echo;

fn main() {
    let (client, _server) = echo::channel();
    client.close();
}
