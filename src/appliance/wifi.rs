//! Wi-Fi on the boards with a radio: the `[network] wifi_*` keys checked,
//! the supplicant's configuration made from them, `postbox.toml` edited by
//! the console's `wifi set`, and the supplicant's replies read for
//! `wifi status`. All of it on strings; the board and the image's init
//! move the bytes (control socket, files).

/// The network to join: WPA2-PSK or WPA3-SAE (personal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wifi {
    pub ssid: String,
    /// A passphrase (8 to 63 characters) or the key as 64 hex digits.
    pub password: String,
    /// Two letters: the country whose radio rules apply.
    pub country: Option<String>,
}

/// The interface the supplicant runs on (the boards have one radio).
pub const INTERFACE: &str = "wlan0";
/// Where the supplicant keeps its control sockets.
pub const CONTROL_DIR: &str = "/run/wpa_supplicant";

/// Every problem with the keys, each naming its key; `Ok(None)` when
/// there is no Wi-Fi.
pub fn check(
    ssid: Option<&str>,
    password: Option<&str>,
    country: Option<&str>,
) -> Result<Option<Wifi>, Vec<String>> {
    let mut problems = Vec::new();
    match ssid {
        Some(s) if s.is_empty() || s.len() > 32 || s.contains(['"', '\\']) || s.contains(char::is_control) => {
            problems.push(format!(
                "network.wifi_ssid: the network's name is 1 to 32 bytes without quotes, backslashes or control characters, not {s:?}"
            ))
        }
        Some(_) if password.is_none() => problems
            .push("network.wifi_ssid: needs wifi_password: only WPA2/WPA3 networks are joined".into()),
        None if password.is_some() || country.is_some() => {
            problems.push("network.wifi_ssid: missing: the Wi-Fi keys need the network's name".into())
        }
        _ => {}
    }
    if let Some(password) = password {
        let printable = password
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !hex_key(password) && (!(8..=63).contains(&password.len()) || !printable) {
            problems.push(format!(
                "network.wifi_password: 8 to 63 printable ASCII characters without quotes or backslashes (or the key as 64 hex digits), not {} characters",
                password.chars().count()
            ));
        }
    }
    if let Some(country) = country {
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(format!(
                "network.wifi_country: expected a two-letter country code like \"GB\", not {country:?}"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(match (ssid, password) {
        (Some(ssid), Some(password)) => Some(Wifi {
            ssid: ssid.into(),
            password: password.into(),
            country: country.map(Into::into),
        }),
        _ => None,
    })
}

fn hex_key(password: &str) -> bool {
    password.len() == 64 && password.bytes().all(|b| b.is_ascii_hexdigit())
}

/// wpa_supplicant's configuration: WPA2-PSK, and WPA3-SAE with a
/// passphrase (SAE has no hex-key form); management frames protected
/// when the access point offers it.
pub fn supplicant_conf(wifi: &Wifi, control_dir: &str) -> String {
    let mut conf = format!("ctrl_interface={control_dir}\nupdate_config=0\n");
    if let Some(country) = &wifi.country {
        conf.push_str(&format!("country={country}\n"));
    }
    // The name in hex: any byte is safe there.
    let ssid: String = wifi.ssid.bytes().map(|b| format!("{b:02x}")).collect();
    let (psk, key_mgmt) = match hex_key(&wifi.password) {
        true => (wifi.password.to_ascii_lowercase(), "WPA-PSK WPA-PSK-SHA256"),
        false => (
            format!("\"{}\"", wifi.password),
            "WPA-PSK WPA-PSK-SHA256 SAE",
        ),
    };
    conf.push_str(&format!(
        "network={{\n\tssid={ssid}\n\tpsk={psk}\n\tkey_mgmt={key_mgmt}\n\tieee80211w=1\n\tscan_ssid=1\n}}\n"
    ));
    conf
}

/// `postbox.toml` with the Wi-Fi keys of its `[network]` section set to
/// `wifi` (the rest of the file as it was; a missing section is added).
pub fn set_in_toml(text: &str, wifi: &Wifi) -> String {
    let quoted = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let mut keys = vec![
        format!("wifi_ssid = {}", quoted(&wifi.ssid)),
        format!("wifi_password = {}", quoted(&wifi.password)),
    ];
    if let Some(country) = &wifi.country {
        keys.push(format!("wifi_country = {}", quoted(country)));
    }
    let mut out = Vec::new();
    let mut section = String::new();
    let mut placed = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.trim_matches(['[', ']', ' ']).to_string();
            out.push(line.to_string());
            if section == "network" && !placed {
                out.extend(keys.iter().cloned());
                placed = true;
            }
            continue;
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        let old = matches!(key, "wifi_ssid" | "wifi_password" | "wifi_country");
        if !(section == "network" && old) {
            out.push(line.to_string());
        }
    }
    if !placed {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push("[network]".into());
        out.extend(keys);
    }
    out.push(String::new());
    out.join("\n")
}

/// What the supplicant said, for `wifi status`: its `STATUS` and
/// `SIGNAL_POLL` replies, and the last trouble the init noted (a wrong
/// password), if any.
pub fn describe(status: &str, signal: &str, trouble: Option<&str>) -> String {
    let field = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    let state = field(status, "wpa_state").unwrap_or_else(|| "unknown".into());
    let mut text = match state.as_str() {
        "COMPLETED" => format!(
            "{INTERFACE}: associated with {:?} ({}), signal {}, address {}",
            field(status, "ssid").unwrap_or_default(),
            field(status, "key_mgmt").unwrap_or_else(|| "?".into()),
            field(signal, "RSSI").map_or("unknown".into(), |r| format!("{r} dBm")),
            field(status, "ip_address").unwrap_or_else(|| "none yet".into()),
        ),
        _ => format!("{INTERFACE}: not associated (supplicant state {state})"),
    };
    if let Some(trouble) = trouble.map(str::trim).filter(|t| !t.is_empty()) {
        if state != "COMPLETED" {
            text.push_str(&format!("\nlast problem: {trouble}"));
        }
    }
    text
}

/// What one of the supplicant's events means for the admin, and whether
/// it is trouble to keep for `wifi status`; `None` for the others.
pub fn event_message(event: &str) -> Option<(String, bool)> {
    let event = event
        .trim_start_matches(|c| c != '>')
        .trim_start_matches('>')
        .trim();
    let field = |key: &str| {
        event
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
    };
    let ssid = field("ssid").unwrap_or_default();
    let reason = field("reason").unwrap_or_default();
    if event.starts_with("CTRL-EVENT-CONNECTED") {
        return Some((format!("Wi-Fi: associated ({event})"), false));
    }
    if event.starts_with("CTRL-EVENT-SSID-TEMP-DISABLED") && reason == "WRONG_KEY" {
        return Some((
            format!("Wi-Fi: wrong password for {ssid:?}: the 4-way handshake failed (reason=WRONG_KEY); correct wifi_password in postbox.toml or with the console's 'wifi set'"),
            true,
        ));
    }
    if event.starts_with("CTRL-EVENT-SSID-TEMP-DISABLED") {
        return Some((
            format!("Wi-Fi: cannot join {ssid:?} (reason={reason}); trying again"),
            true,
        ));
    }
    if event.starts_with("CTRL-EVENT-NETWORK-NOT-FOUND") {
        return Some((
            "Wi-Fi: the network is not in range; still looking".into(),
            true,
        ));
    }
    if event.starts_with("CTRL-EVENT-DISCONNECTED") {
        return Some((
            format!("Wi-Fi: disconnected (reason={reason}); reconnecting"),
            false,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> Wifi {
        Wifi {
            ssid: "home net".into(),
            password: "correct horse".into(),
            country: Some("GB".into()),
        }
    }

    #[test]
    fn supplicant_conf_for_a_passphrase_and_a_hex_key() {
        let conf = supplicant_conf(&home(), "/run/wpa_supplicant");
        assert!(
            conf.starts_with("ctrl_interface=/run/wpa_supplicant\n"),
            "{conf}"
        );
        assert!(conf.contains("country=GB\n"), "{conf}");
        assert!(conf.contains("\tssid=686f6d65206e6574\n"), "{conf}");
        assert!(conf.contains("\tpsk=\"correct horse\"\n"), "{conf}");
        assert!(
            conf.contains("key_mgmt=WPA-PSK WPA-PSK-SHA256 SAE\n"),
            "{conf}"
        );
        let key = Wifi {
            password: "AB".repeat(32),
            country: None,
            ..home()
        };
        let conf = supplicant_conf(&key, "/run/w");
        assert!(
            conf.contains(&format!("\tpsk={}\n", "ab".repeat(32))),
            "{conf}"
        );
        assert!(!conf.contains("SAE") && !conf.contains("country"), "{conf}");
    }

    #[test]
    fn set_in_toml_replaces_the_keys_and_keeps_the_rest() {
        let before = "hostname = \"box\"\n[network]\nmode = \"dhcp\"\nwifi_ssid = \"old\"\n# wifi_password = \"x\"\nwifi_password = \"old password\"\n[smtp]\nlisten = \"0.0.0.0:25\"\n";
        let after = set_in_toml(before, &home());
        assert_eq!(
            after,
            "hostname = \"box\"\n[network]\nwifi_ssid = \"home net\"\nwifi_password = \"correct horse\"\nwifi_country = \"GB\"\nmode = \"dhcp\"\n# wifi_password = \"x\"\n[smtp]\nlisten = \"0.0.0.0:25\"\n"
        );
        let added = set_in_toml(
            "hostname = \"box\"\n",
            &Wifi {
                country: None,
                ..home()
            },
        );
        assert_eq!(
            added,
            "hostname = \"box\"\n\n[network]\nwifi_ssid = \"home net\"\nwifi_password = \"correct horse\"\n"
        );
    }

    #[test]
    fn status_says_associated_signal_and_address_or_why_not() {
        let status = "bssid=02:00:00:00:01:00\nfreq=2412\nssid=home net\nid=0\nmode=station\npairwise_cipher=CCMP\nkey_mgmt=WPA2-PSK\nwpa_state=COMPLETED\nip_address=192.168.7.10\naddress=02:00:00:00:00:00\n";
        let signal = "RSSI=-30\nLINKSPEED=54\nNOISE=9999\nFREQUENCY=2412\n";
        assert_eq!(
            describe(status, signal, Some("wrong password")),
            "wlan0: associated with \"home net\" (WPA2-PSK), signal -30 dBm, address 192.168.7.10"
        );
        assert_eq!(
            describe("wpa_state=SCANNING\n", "FAIL\n", Some("wrong password for \"home\"\n")),
            "wlan0: not associated (supplicant state SCANNING)\nlast problem: wrong password for \"home\""
        );
        assert_eq!(
            describe("", "", None),
            "wlan0: not associated (supplicant state unknown)"
        );
    }

    #[test]
    fn events_explained() {
        let wrong = "<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"home\" auth_failures=1 duration=10 reason=WRONG_KEY";
        let (line, trouble) = event_message(wrong).unwrap();
        assert!(
            line.starts_with(
                "Wi-Fi: wrong password for \"home\": the 4-way handshake failed (reason=WRONG_KEY)"
            ),
            "{line}"
        );
        assert!(trouble);
        let connected =
            "<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]";
        assert!(!event_message(connected).unwrap().1);
        let lost = event_message(
            "<3>CTRL-EVENT-DISCONNECTED bssid=02:00:00:00:01:00 reason=3 locally_generated=1",
        )
        .unwrap();
        assert_eq!(lost.0, "Wi-Fi: disconnected (reason=3); reconnecting");
        assert_eq!(event_message("<3>CTRL-EVENT-SCAN-RESULTS "), None);
        assert_eq!(event_message("PONG"), None);
    }

    #[test]
    fn keys_checked_together() {
        assert_eq!(check(None, None, None), Ok(None));
        assert_eq!(
            check(Some("home net"), Some("correct horse"), Some("GB")),
            Ok(Some(home()))
        );
        let e = check(Some("a\\b"), Some("pass\\word"), Some("G")).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
