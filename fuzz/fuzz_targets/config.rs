//! Config files of any content: an error message or settings, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = postbox::config::Config::from_toml(text) {
            assert!(!config.domains.is_empty());
        }
    }
});
