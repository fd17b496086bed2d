//! SASL PLAIN and LOGIN responses of any content.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::auth::sasl;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = sasl::decode_plain(data) {
        assert!(!c.user.is_empty());
        assert!(!c.user.contains('\0') && !c.password.contains('\0'));
    }
    let _ = sasl::decode_login_field::<64>(data);
});
