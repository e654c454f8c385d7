// The derive accepts a type only if every field is exchangeable.
use contracts::Exchangeable;

#[derive(Exchangeable)]
pub struct Record {
    pub id: u64,
    pub name: String,
}

fn main() {}
