//! ACME HTTP-01 challenges (RFC 8555 §8.3), as the web listeners see
//! them: the one place a certificate order in progress is asked for the
//! answer to a token.

use super::router::Site;

/// The key authorization for `token` while an order waits for it; `None`
/// (the page is 404) when no challenge is in progress.
pub fn http01_key_authorization(site: &Site, token: &str) -> Option<String> {
    site.acme.key_authorization(token)
}
