// `Read` is a client message, but only once the stream is open: in `Start` there is no `send_read`.
use contracts::stream;

fn main() {
    let (client, _server) = stream::channel();
    let _ = client.send_read(4096);
}
