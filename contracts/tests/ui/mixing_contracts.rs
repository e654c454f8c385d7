// The kernel hands the name service name-service connections: a key-value endpoint does not fit.
use contracts::{kv_store, name_listener};

fn main() {
    let (listener, _name_service_end) = name_listener::channel();
    let (_kv_client, kv_server) = kv_store::channel();
    let _ = listener.send_connect(1, kv_server);
}
