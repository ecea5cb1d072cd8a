//! Service names and instance ids: DNS labels, because both appear in DNS answers.

use super::RegistryError;

/// Whether `s` is a lower-case DNS label: 1-63 of `[a-z0-9-]`, no leading/trailing `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks a service name.
pub fn validate_service(name: &str) -> Result<(), RegistryError> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(RegistryError::InvalidServiceName(name.to_owned()))
    }
}

/// Checks an instance id.
pub fn validate_instance_id(id: &str) -> Result<(), RegistryError> {
    if is_dns_label(id) {
        Ok(())
    } else {
        Err(RegistryError::InvalidInstanceId(id.to_owned()))
    }
}

/// Turns arbitrary text (a hostname, an address) into a DNS label by mapping every other
/// character to `-` and trimming; used to derive default instance ids.
pub fn to_dns_label(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let mut label: String = trimmed.chars().take(63).collect();
    while label.ends_with('-') {
        label.pop();
    }
    if label.is_empty() {
        "instance".to_owned()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(is_dns_label("product-1"));
        assert!(!is_dns_label("Product"));
        assert!(!is_dns_label("-x"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert_eq!(to_dns_label("Host.Example_1:8001"), "host-example-1-8001");
        assert!(is_dns_label(&to_dns_label("--::--")));
    }
}
