use super::*;
use std::path::Path;

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postbox.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn embedded_defaults() {
    let c = Config::load(&Overrides::default()).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("postbox-data"));
    assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:2525");
    assert_eq!(c.pop3.listen.to_string(), "127.0.0.1:2110");
    assert_eq!(c.domains, vec!["localhost"]);
    assert_eq!(c.smtp.max_message_size, 25 * 1024 * 1024);
    assert_eq!(c.smtp.max_recipients, 100);
    assert!(!c.hostname.is_empty());
}

#[test]
fn file_then_flags() {
    let (_d, path) = write(
        "data_dir = \"/srv/mail\"\nhostname = \"mx.example.org\"\ndomains = [\"Example.org\"]\n[smtp]\nlisten = \"0.0.0.0:25\"\nmax_recipients = 5\n[pop3]\ntimeout = 60\n",
    );
    let mut o = Overrides {
        config_file: Some(path),
        ..Default::default()
    };
    let c = Config::load(&o).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/srv/mail"));
    assert_eq!(c.domains, vec!["example.org"]);
    assert_eq!(c.smtp.max_recipients, 5);
    assert_eq!(c.pop3.timeout, Duration::from_secs(60));
    o.smtp = Some("127.0.0.1:9925".parse().unwrap());
    o.domains = vec!["club.example".into(), "example.org".into()];
    o.hostname = Some("other".into());
    let c = Config::load(&o).unwrap();
    assert_eq!(c.smtp.listen.port(), 9925);
    assert_eq!(c.domains, vec!["example.org", "club.example"]);
    assert_eq!(c.hostname, "other");
    assert!(c.serves("CLUB.example"));
}

#[test]
fn errors_are_clear() {
    let (_d, path) = write("smtp_port = 25\n");
    let e = Config::load(&Overrides {
        config_file: Some(path),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.contains("smtp_port"), "{e}");
    let e = Config::load(&Overrides {
        config_file: Some("/nonexistent/postbox.toml".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.starts_with("cannot read config"));
    let (_d, path) = write("[smtp]\nmax_errors = 0\n");
    let e = Config::load(&Overrides {
        config_file: Some(path),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.contains("max_errors"));
    let (_d, path) = write("[pop3]\nmax_errors = 0\n");
    let e = Config::load(&Overrides {
        config_file: Some(path),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.contains("pop3.max_errors"), "{e}");
    let e = Config::load(&Overrides {
        domains: vec!["bad domain".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.contains("invalid domain"));
}

#[test]
fn tls_listeners_and_relay() {
    let c = Config::load(&Overrides::default()).unwrap();
    assert_eq!(c.submission.unwrap().to_string(), DEFAULT_SUBMISSION);
    assert_eq!(c.submissions.unwrap().to_string(), DEFAULT_SUBMISSIONS);
    assert_eq!(c.pop3s.unwrap().to_string(), DEFAULT_POP3S);
    assert!(c.relay_from.is_empty());
    assert!(!c.allow_plaintext_on_loopback);
    let (_d, path) = write(
        "relay_from = [\"127.0.0.1/32\", \"192.168.1.0/24\"]\n[submissions]\nlisten = \"off\"\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n[auth]\nallow_plaintext_on_loopback = true\n",
    );
    let c = Config::load(&Overrides {
        config_file: Some(path),
        pop3s: Some(None),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.relay_from.len(), 2);
    assert_eq!(c.submissions, None);
    assert_eq!(c.pop3s, None);
    assert_eq!(c.tls.key, Some(PathBuf::from("/k.pem")));
    assert!(c.allow_plaintext_on_loopback);
    let (_d, path) = write("relay_from = [\"10.0.0.0/40\"]\n");
    let e = Config::load(&Overrides {
        config_file: Some(path),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.contains("relay_from"), "{e}");
    let (_d, path) = write("[tls]\ncert = \"/c.pem\"\n");
    assert!(Config::load(&Overrides {
        config_file: Some(path),
        ..Default::default()
    })
    .is_err());
}

#[test]
fn example_file_parses_to_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("postbox.toml.example");
    let from_example = Config::load(&Overrides {
        config_file: Some(path),
        ..Default::default()
    })
    .unwrap();
    let defaults = Config::load(&Overrides::default()).unwrap();
    assert_eq!(
        format!("{:?}", from_example.smtp),
        format!("{:?}", defaults.smtp)
    );
    assert_eq!(
        format!("{:?}", from_example.pop3),
        format!("{:?}", defaults.pop3)
    );
    assert_eq!(from_example.domains, defaults.domains);
    assert_eq!(
        (
            from_example.submission,
            from_example.submissions,
            from_example.pop3s
        ),
        (defaults.submission, defaults.submissions, defaults.pop3s)
    );
    assert_eq!(from_example.relay_from, defaults.relay_from);
    assert_eq!(from_example.limits, defaults.limits);
    assert_eq!(from_example.listener_sessions, defaults.listener_sessions);
    assert_eq!(from_example.quota, defaults.quota);
    assert_eq!(
        format!("{:?}", from_example.greylist),
        format!("{:?}", defaults.greylist)
    );
    assert_eq!(
        from_example.allow_plaintext_on_loopback,
        defaults.allow_plaintext_on_loopback
    );
    assert_eq!(from_example.data_dir, defaults.data_dir);
    assert_eq!(from_example.spam, defaults.spam);
    assert_eq!(from_example.dkim, defaults.dkim);
    assert_eq!(from_example.from_must_match, defaults.from_must_match);
    assert_eq!(from_example.queue, defaults.queue);
    assert_eq!(from_example.web, defaults.web);
    assert_eq!(from_example.acme, defaults.acme);
}

#[test]
fn acme_section_defaults_values_and_mistakes() {
    let c = Config::from_toml("hostname = \"mx.example.org\"\n").unwrap();
    assert_eq!(c.acme, AcmeConfig::default());
    assert!(!c.acme.enabled);
    assert_eq!(c.acme.directory.to_string(), DEFAULT_ACME_DIRECTORY);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "").unwrap();
    let text = format!(
        "hostname = \"mx.example.org\"\n[acme]\nenabled = true\ndirectory = \"https://127.0.0.1:14000/dir\"\ncontact = \"admin@example.org\"\nca = {:?}\nnames = [\"Mail.Example.org.\", \"mx.example.org\"]\n",
        ca.display().to_string()
    );
    let c = Config::from_toml(&text).unwrap();
    assert!(c.acme.enabled);
    assert_eq!(c.acme.directory.port, 14000);
    assert_eq!(c.acme.contact.as_deref(), Some("mailto:admin@example.org"));
    assert_eq!(c.acme.ca.as_deref(), Some(ca.as_path()));
    assert_eq!(c.acme_names(), vec!["mx.example.org", "mail.example.org"]);
    for (bad, key) in [
        ("directory = \"http://acme.test/dir\"", "acme.directory: "),
        (
            "directory = \"https://acme.test:port/\"",
            "acme.directory: ",
        ),
        ("contact = \"not an address\"", "acme.contact: "),
        ("enabled = true\nca = \"/nonexistent/ca.pem\"", "acme.ca: "),
        ("names = [\"*.example.org\"]", "acme.names: "),
        ("names = [\"a..b\"]", "acme.names: "),
        ("enable = true", "unknown field"),
    ] {
        let text = format!("hostname = \"mx.example.org\"\n[acme]\n{bad}\n");
        let e = Config::from_toml(&text).unwrap_err();
        assert!(e.contains(key), "{bad}: {e}");
    }
    let e = Config::from_toml("hostname = \"bad name\"\n[acme]\nenabled = true\n").unwrap_err();
    assert!(e.contains("acme.enabled"), "{e}");
}

#[test]
fn web_listeners_and_admin_networks() {
    let c = Config::load(&Overrides::default()).unwrap();
    assert_eq!(c.web.listen.unwrap().to_string(), DEFAULT_WEB);
    assert_eq!(c.web.http_listen.unwrap().to_string(), DEFAULT_HTTP);
    let lan = |ip: &str| {
        let ip = ip.parse().unwrap();
        c.web.admin_from.iter().any(|n| n.contains(ip))
    };
    for inside in [
        "10.1.2.3",
        "172.31.0.1",
        "192.168.1.20",
        "fd00::1",
        "127.0.0.1",
        "::1",
    ] {
        assert!(lan(inside), "{inside}");
    }
    for outside in ["172.32.0.1", "8.8.8.8", "2001:db8::1"] {
        assert!(!lan(outside), "{outside}");
    }
    let c = Config::from_toml(
        "[web]\nlisten = \"0.0.0.0:443\"\nhttp_listen = \"off\"\nadmin_from = [\"192.168.7.0/24\"]\n",
    )
    .unwrap();
    assert_eq!(c.web.listen.unwrap().to_string(), "0.0.0.0:443");
    assert_eq!(c.web.http_listen, None);
    assert_eq!(c.web.admin_from.len(), 1);
    // Flags win over the file.
    let (_d, path) = write("[web]\nlisten = \"0.0.0.0:443\"\n");
    let c = Config::load(&Overrides {
        config_file: Some(path),
        web: Some(None),
        http: Some(Some("127.0.0.1:8080".parse().unwrap())),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.web.listen, None);
    assert_eq!(c.web.http_listen.unwrap().to_string(), "127.0.0.1:8080");
    for (toml, problem) in [
        (
            "[web]\nhttp_listen = \"port 80\"\n",
            "web.http_listen: invalid listen address",
        ),
        (
            "[web]\nadmin_from = [\"10.0.0.0/33\"]\n",
            "web.admin_from: invalid network",
        ),
        ("[web]\nmax_sessions = 0\n", "web.max_sessions"),
    ] {
        let e = Config::from_toml(toml).unwrap_err();
        assert!(e.contains(problem), "{toml}: {e}");
    }
}

fn example_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("postbox.toml.example");
    std::fs::read_to_string(path).unwrap()
}

/// `name` of a `name = value` line, or of `[name]` when `section`.
fn key_of(line: &str, section: bool) -> Option<&str> {
    let name = if section {
        line.strip_prefix('[')?.strip_suffix(']')?
    } else {
        line.split_once(" = ")?.0
    };
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    (!name.is_empty() && name.chars().all(plain)).then_some(name)
}

/// The example's keys (commented out or not) with the comment lines
/// just above each, and its text with every such key uncommented.
fn example_keys() -> (Vec<(String, String)>, String) {
    let (mut keys, mut uncommented) = (Vec::new(), String::new());
    let (mut section, mut comments) = (String::new(), String::new());
    for line in example_text().lines() {
        let setting = line.strip_prefix("# ").unwrap_or(line);
        if let Some(name) = key_of(setting, true) {
            section = name.to_string();
            comments.clear();
        } else if let Some(name) = key_of(setting, false) {
            let key = match section.as_str() {
                "" => name.to_string(),
                s => format!("{s}.{name}"),
            };
            keys.push((key, std::mem::take(&mut comments)));
        } else if line.starts_with('#') {
            comments.push_str(line);
            comments.push('\n');
            uncommented.push_str(line);
            uncommented.push('\n');
            continue;
        } else {
            comments.clear();
        }
        uncommented.push_str(setting);
        uncommented.push('\n');
    }
    (keys, uncommented)
}

#[test]
fn example_lists_every_key_the_parser_knows() {
    let (documented, uncommented) = example_keys();
    let documented: Vec<&str> = documented.iter().map(|(k, _)| k.as_str()).collect();
    let known = known_keys();
    assert!(known.contains(&"smtp.listen".to_string()), "{known:?}");
    let missing: Vec<&String> = known
        .iter()
        .filter(|k| !documented.contains(&k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not in postbox.toml.example: {missing:?}"
    );
    // And every key shown there is one the parser takes, with a valid
    // example value: the whole file parses with each one set.
    Config::from_toml(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    for key in &documented {
        assert!(known.iter().any(|k| k == key), "{key} is not a key");
    }
}

#[test]
fn example_states_each_range() {
    let (documented, _) = example_keys();
    for bound in BOUNDS {
        let comments = documented
            .iter()
            .find(|(key, _)| key == bound.key)
            .map(|(_, c)| c.as_str())
            .unwrap_or_else(|| panic!("{} not in the example", bound.key));
        assert!(
            comments.contains(&format!("{})", bound.range())),
            "{}: no \"{}\" in its comment:\n{comments}",
            bound.key,
            bound.range()
        );
    }
}

#[test]
fn every_number_has_a_range() {
    // Each key that takes a number refuses one beyond any range, by
    // name and with its range; every other key refuses numbers.
    for key in known_keys() {
        let toml = format!("{key} = 9223372036854775807\n");
        let e = Config::from_toml(&toml).unwrap_err();
        match BOUNDS.iter().find(|b| b.key == key) {
            Some(b) => assert!(
                e.starts_with(&format!("{key} must be {}", b.range())),
                "{key}: {e}"
            ),
            None => assert!(e.contains("invalid type"), "{key}: {e}"),
        }
    }
}

#[test]
fn numbers_out_of_range_fail_with_key_and_range() {
    for (toml, expected) in [
        (
            "[smtp]\ncommand_timeout = 9223372036854775807\n",
            "smtp.command_timeout must be 1s to 1h, not 9223372036854775807 seconds",
        ),
        (
            "[greylist]\nallow_days = 213503982334601\n",
            "greylist.allow_days must be 1 to 365 days, not 213503982334601",
        ),
        (
            "[smtp]\ndata_timeout = \"99999999999999d\"\n",
            "smtp.data_timeout must be 1s to 1h, not \"99999999999999d\"",
        ),
        (
            "[pop3]\nmax_sessions = -1\n",
            "pop3.max_sessions must be 1 to 10000, not -1",
        ),
        (
            "[smtp]\nmax_errors = 0\n",
            "smtp.max_errors must be 1 to 1000, not 0",
        ),
        (
            "[smtp]\nmax_message_size = \"unlimited\"\n",
            "smtp.max_message_size must be 1K to 1G, not \"unlimited\"",
        ),
        (
            "[quota]\nwarn_percent = 101\n",
            "quota.warn_percent must be 1 to 100 percent",
        ),
        ("queue_return = \"31d\"\n", "queue_return must be 1s to 30d"),
        (
            "[queue]\nmax_deliveries = 0\n",
            "queue.max_deliveries must be 1 to 100",
        ),
        (
            "[queue]\nsmtp_port = 65536\n",
            "queue.smtp_port must be 1 to 65535",
        ),
    ] {
        let e = Config::from_toml(toml).unwrap_err();
        assert!(e.starts_with(expected), "{toml:?}: {e}");
    }
    // The ends of a range are in it.
    let c = Config::from_toml(
        "[smtp]\ncommand_timeout = \"1h\"\ngreet_delay = 0\nmax_message_size = \"1G\"\n\
         [greylist]\nenabled = true\nallow_days = 365\n",
    )
    .unwrap();
    assert_eq!(c.smtp.command_timeout, Duration::from_secs(3600));
    assert_eq!(c.smtp.max_message_size, 1 << 30);
    assert_eq!(c.greylist.unwrap().allow, Duration::from_secs(365 * 86400));
}

/// Both texts give the same settings.
fn same(old: &str, new: &str) {
    let old = Config::from_toml(old).unwrap_or_else(|e| panic!("{e}\n{old}"));
    let new = Config::from_toml(new).unwrap_or_else(|e| panic!("{e}\n{new}"));
    assert_eq!(format!("{old:?}"), format!("{new:?}"));
}

#[test]
fn example_from_before_the_queue_section_gives_the_same_config() {
    same(
        include_str!("example-before-queue-section.toml"),
        &example_text(),
    );
}

#[test]
fn old_names_and_plain_numbers_read_as_before() {
    same(
        "smarthost = \"mx.example:2465\"\nsmarthost_user = \"u\"\n\
         smarthost_password = \"p\"\nsmarthost_tls = \"implicit\"\n\
         smarthost_ca = \"/ca.pem\"\nqueue_warn = 3600\nqueue_return = \"2d\"\n\
         [greylist]\nenabled = true\nretry_window_hours = 24\nallow_days = 10\n",
        "[queue]\nsmarthost = \"mx.example:2465\"\nsmarthost_user = \"u\"\n\
         smarthost_password = \"p\"\nsmarthost_tls = \"implicit\"\n\
         smarthost_ca = \"/ca.pem\"\nwarn = \"1h\"\nreturn = 172800\n\
         [greylist]\nenabled = true\nretry_window = \"1d\"\nallow = \"10d\"\n",
    );
    let c = Config::from_toml("queue_warn = 3600\n").unwrap();
    assert_eq!(c.queue.warn, Duration::from_secs(3600));
    let c = Config::from_toml("[greylist]\nenabled = true\nallow_days = 10\n").unwrap();
    assert_eq!(c.greylist.unwrap().allow, Duration::from_secs(10 * 86400));
}

#[test]
fn durations_take_one_syntax_on_every_key() {
    // These counted only whole hours and days before.
    same(
        "[greylist]\nenabled = true\nretry_window_hours = \"2d\"\nallow_days = \"48h\"\n",
        "[greylist]\nenabled = true\nretry_window_hours = 48\nallow_days = 2\n",
    );
    for key in BOUNDS.iter().filter(|b| b.unit == Unit::Seconds) {
        let (section, name) = key.key.split_once('.').unwrap();
        let text = format!("[{section}]\n{name} = \"{}s\"\n", key.max);
        Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
    for key in BOUNDS.iter().filter(|b| b.unit == Unit::Bytes) {
        let (section, name) = key.key.split_once('.').unwrap();
        let text = format!("[{section}]\n{name} = \"{}K\"\n", key.max / 1024);
        Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

#[test]
fn bad_values_name_the_key_as_written() {
    for (toml, expected) in [
        (
            "[queue]\nwarn = \"soon\"\n",
            "queue.warn: invalid duration \"soon\"",
        ),
        (
            "queue_warn = \"soon\"\n",
            "queue_warn: invalid duration \"soon\"",
        ),
        (
            "[greylist]\nretry_window_hours = 721\n",
            "greylist.retry_window_hours must be 1 to 720 hours, not 721",
        ),
        (
            "[greylist]\nretry_window = \"31d\"\n",
            "greylist.retry_window must be 1h to 30d, not \"31d\"",
        ),
        (
            "[quota]\ndefault = \"lots\"\n",
            "quota.default: invalid size \"lots\"",
        ),
        (
            "smarthost = \"mx.example:x\"\n",
            "smarthost: invalid port in \"mx.example:x\"",
        ),
        (
            "[queue]\nsmarthost = \"mx.example\"\nsmarthost_tls = \"yes\"\n",
            "queue.smarthost_tls: expected \"starttls\", \"implicit\" or \"none\", not \"yes\"",
        ),
        (
            "smarthost = \"mx.example\"\nsmarthost_user = \"u\"\n",
            "smarthost_user and smarthost_password go together",
        ),
        (
            "log_level = \"loud\"\n",
            "log_level: invalid log level \"loud\"",
        ),
        ("domains = [\"a b\"]\n", "domains: invalid domain \"a b\""),
        (
            "[submission]\nlisten = \"everywhere\"\n",
            "submission.listen: invalid listen address \"everywhere\"",
        ),
        (
            "queue_warn = \"1h\"\n[queue]\nwarn = \"2h\"\n",
            "queue.warn and queue_warn (its old name) are both given; keep queue.warn",
        ),
    ] {
        let e = Config::from_toml(toml).unwrap_err();
        assert!(e.starts_with(expected), "{toml:?}: {e}");
    }
}

#[test]
fn every_problem_is_reported() {
    let (_d, path) =
        write("[smtp]\nmax_errors = 0\n[pop3]\ntimeout = \"2h\"\n[spam]\naction = \"drop\"\n");
    let problems = Config::check(&Overrides {
        config_file: Some(path),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "smtp.max_errors must be 1 to 1000, not 0",
            "pop3.timeout must be 1s to 1h, not \"2h\"",
            "spam.action: expected \"reject\" or \"tag\", not \"drop\"",
        ]
    );
}

#[test]
fn old_names_are_documented_but_not_listed() {
    let known = known_keys();
    let example = example_text();
    for name in OLD_NAMES {
        assert!(known.contains(&name.new.to_string()), "{}", name.new);
        assert!(!known.contains(&name.old.to_string()), "{}", name.old);
        let short = name.old.rsplit('.').next().unwrap();
        assert!(example.contains(short), "{} not in the example", name.old);
    }
}

#[test]
fn dkim_section_defaults_values_and_mistakes() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c.dkim, DkimConfig::default());
    assert!(c.dkim.sign);
    assert_eq!(c.dkim.selector, None);
    let c = Config::from_toml("[dkim]\nselector = \"mail-2026\"\nsign = false\n").unwrap();
    assert_eq!(c.dkim.selector.as_deref(), Some("mail-2026"));
    assert!(!c.dkim.sign);
    for bad in ["\"\"", "\"Upper\"", "\"a.b\"", "\"-lead\"", "\"x_y\""] {
        let e = Config::from_toml(&format!("[dkim]\nselector = {bad}\n")).unwrap_err();
        assert!(e.contains("dkim.selector"), "{e}");
    }
    let long = "a".repeat(crate::dkim::keys::MAX_SELECTOR_BASE + 1);
    let e = Config::from_toml(&format!("[dkim]\nselector = \"{long}\"\n")).unwrap_err();
    assert!(e.contains("dkim.selector"), "{e}");
    let e = Config::from_toml("[dkim]\nsign = \"yes\"\n").unwrap_err();
    assert!(e.contains("sign"), "{e}");
    let e = Config::from_toml("[dkim]\nsigning = true\n").unwrap_err();
    assert!(e.contains("signing"), "{e}");
}

#[test]
fn proxy_protocol_listeners_and_their_proxies() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c.proxy, ProxyConfig::default());
    let c = Config::from_toml(
        "proxy_from = [\"192.168.1.5\", \"10.9.0.0/16\"]\n[smtp]\nproxy_protocol = true\n[pop3s]\nproxy_protocol = true\n[web]\nproxy_protocol = true\n",
    )
    .unwrap();
    assert!(c.proxy.smtp && c.proxy.pop3s && c.proxy.web);
    assert!(!c.proxy.pop3 && !c.proxy.submission && !c.proxy.submissions);
    assert_eq!(c.proxy.from.len(), 2);
    assert!(c.proxy.from[1].contains("10.9.3.4".parse().unwrap()));
    // Headers believed from anyone would let anyone choose their address.
    for section in ["smtp", "submission", "submissions", "pop3", "pop3s", "web"] {
        for from in ["", "proxy_from = []\n"] {
            let toml = format!("{from}[{section}]\nproxy_protocol = true\n");
            let e = Config::from_toml(&toml).unwrap_err();
            assert!(
                e.starts_with(&format!("{section}.proxy_protocol: needs proxy_from")),
                "{toml}: {e}"
            );
        }
    }
    let e = Config::from_toml("proxy_from = [\"10.0.0.0/33\"]\n").unwrap_err();
    assert!(e.starts_with("proxy_from: invalid network"), "{e}");
    let e = Config::from_toml("[pop3]\nproxy_protocol = \"yes\"\n").unwrap_err();
    assert!(e.contains("proxy_protocol"), "{e}");
    // The proxies alone, with no listener behind one, is fine.
    assert!(Config::from_toml("proxy_from = [\"127.0.0.1\"]\n").is_ok());
}

#[test]
fn cluster_moves_shared_things_and_keeps_the_rest() {
    let plain = Config::from_toml("data_dir = \"/d\"").unwrap();
    assert_eq!(plain.mail_dir(), Path::new("/d"));
    assert_eq!(plain.node_dir(), PathBuf::from("/d"));
    assert_eq!(plain.unique_host(), plain.hostname);
    let text = "data_dir = \"/d\"\nhostname = \"mx\"\n[cluster]\nnode = \"n2\"\nshared = \"/s\"";
    let node = Config::from_toml(text).unwrap();
    assert_eq!(node.mail_dir(), Path::new("/s"));
    assert_eq!(node.node_dir(), PathBuf::from("/s/nodes/n2"));
    assert_eq!(node.aliases, PathBuf::from("/s/aliases"));
    assert_eq!(node.unique_host(), "n2.mx");
    for (bad, says) in [
        (
            "[cluster]\nnode = \"n1\"",
            "cluster.node and cluster.shared",
        ),
        ("[cluster]\nnode = \"a/b\"\nshared = \"/s\"", "cluster.node"),
        (
            "[cluster]\nnode = \"n1\"\nshared = \"rel\"",
            "cluster.shared",
        ),
    ] {
        let e = Config::from_toml(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn wifi_keys_checked_naming_the_key() {
    let ok = "[network]\nwifi_ssid = \"home net\"\nwifi_password = \"correct horse\"\nwifi_country = \"GB\"\n";
    assert!(Config::from_toml(ok).is_ok());
    let psk = format!(
        "[network]\nwifi_ssid = \"home\"\nwifi_password = \"{}\"\n",
        "ab".repeat(32)
    );
    assert!(Config::from_toml(&psk).is_ok());
    for (toml, problem) in [
        ("[network]\nwifi_ssid = \"home\"\n", "network.wifi_ssid: needs wifi_password"),
        ("[network]\nwifi_password = \"correct horse\"\n", "network.wifi_ssid: missing"),
        ("[network]\nwifi_ssid = \"\"\nwifi_password = \"correct horse\"\n", "network.wifi_ssid: the network's name is 1 to 32 bytes"),
        ("[network]\nwifi_ssid = \"h\"\nwifi_password = \"short\"\n", "network.wifi_password: 8 to 63 printable"),
        ("[network]\nwifi_ssid = \"h\"\nwifi_password = \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\n", "network.wifi_password: 8 to 63"),
        ("[network]\nwifi_ssid = \"h\"\nwifi_psk = \"correct horse\"\n", "wifi_psk"),
        ("[network]\nwifi_ssid = \"h\"\nwifi_password = \"correct horse\"\nwifi_country = \"gb\"\n", "network.wifi_country: expected a two-letter"),
    ] {
        let e = Config::from_toml(toml).unwrap_err();
        assert!(e.contains(problem), "{toml}: {e}");
    }
}
