// A service provider serves echo connections: a key-value endpoint does not fit.
use contracts::{kv_store, service_provider};

fn main() {
    let (provider, _provider_server) = service_provider::channel();
    let (_kv_client, kv_server) = kv_store::channel();
    let _ = provider.send_connect(kv_server);
}
