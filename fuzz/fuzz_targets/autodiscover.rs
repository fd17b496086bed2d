//! Autodiscover requests of any content: an answer or a reason, never a
//! panic; an answer is well-formed, whatever address it was asked for.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::config::Config;
use postbox::web::autoconfig::autodiscover;
use std::sync::OnceLock;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::from_toml("hostname = \"mail.club.example\"\ndomains = [\"club.example\"]\n")
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(answer) = autodiscover(config(), data) {
        // The address is the only text taken from the request: it stays
        // character data, so the element count is fixed.
        assert_eq!(answer.matches('<').count(), answer.matches('>').count());
        assert!(answer.matches("<LoginName>").count() == answer.matches("</LoginName>").count());
    }
});
