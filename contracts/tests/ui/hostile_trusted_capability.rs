// The trusted base's capability (installing the platform, handing values between owners) is made by an
// `unsafe fn`: a service, which forbids `unsafe`, cannot hold one.
#![forbid(unsafe_code)]

fn main() {
    let trusted = channels::trusted::Trusted::new();
    let _ = trusted;
}
