//! Password hashing with Argon2id. The cost is fixed here, tuned so one
//! login takes a fraction of a second and about 19 MiB on a small ARM board;
//! servers verify one password at a time so logins never stack up memory.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};

/// OWASP's first Argon2id recommendation: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Longest password accepted; longer input is refused rather than truncated.
pub const MAX_PASSWORD: usize = 256;

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a new password into a PHC string (salt and parameters included).
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid params")
        .to_string()
}

/// Checks a password against a stored PHC string. Malformed hashes never match.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A real hash of a password nobody knows, checked in place of an unknown
/// user's so a failed login costs the same either way.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("\u{0}no such user"))
}

/// Rules for a new password: not empty, not absurdly long, printable.
pub fn check_new(password: &str) -> Result<(), &'static str> {
    if password.is_empty() {
        return Err("password must not be empty");
    }
    if password.len() > MAX_PASSWORD {
        return Err("password is too long (at most 256 bytes)");
    }
    if password.chars().any(|c| c.is_control()) {
        return Err("password must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("correct horse");
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("correct horse"));
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct hors", &phc));
        assert!(!verify("correct horse", "garbage"));
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new("").is_err());
        assert!(check_new("a\u{7}b").is_err());
        assert!(check_new(&"x".repeat(257)).is_err());
        assert!(check_new("fine password").is_ok());
    }
}
