//! Identifier conversions for generated names (`NameService` -> `name_service`, `GetValue` -> `send_get_value`).

/// `UpperCamelCase` to `snake_case`; runs of capitals stay together (`KVStore` -> `kv_store`).
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn converts_camel_case() {
        assert_eq!(snake_case("Echo"), "echo");
        assert_eq!(snake_case("NameService"), "name_service");
        assert_eq!(snake_case("KVStore"), "kv_store");
        assert_eq!(snake_case("NicDevice2Ports"), "nic_device2_ports");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }
}
