// Skipping protocol steps needs the typed endpoint's raw transport; its plumbing takes a token that only the
// channel runtime can make, and the `Receive` trait cannot be implemented outside the `contract!` macro.
#![forbid(unsafe_code)]
use channels::Receive;
use contracts::echo;

struct Fake;

unsafe impl Receive for Fake {
    type Tx = u8;
    type Rx = u8;
    type Message = u8;
    fn __raw(&mut self, _: channels::Internal) -> &mut channels::raw::RawEndpoint<u8, u8> {
        unimplemented!()
    }
    fn __raw_ref(&self, _: channels::Internal) -> &channels::raw::RawEndpoint<u8, u8> {
        unimplemented!()
    }
    fn __decode(self, m: u8, _: channels::Internal) -> Result<u8, channels::Closed> {
        Ok(m)
    }
}

fn main() {
    let (_client, mut server) = echo::channel();
    let _raw = server.__raw(channels::Internal(()));
}
