pub fn deep() {}
