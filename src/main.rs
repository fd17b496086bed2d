//! The `postbox` command: argument parsing and dispatch. Exit codes: 0
//! success, 1 failure (one line on stderr), 2 usage error.

use postbox::config::{parse_level, parse_listen, Config, Overrides};
use postbox::{admin, appliance, console, server};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

const VERSION: &str = env!("CARGO_PKG_VERSION");

const HELP_HEAD: &str = "\
postbox - a small, crash-safe mail box: SMTP in, Maildir store, POP3 out

usage:
  postbox serve [OPTIONS]             run the mail box
  postbox console                     admin shell on stdin/stdout
  postbox console --admin             the appliance's serial console
  postbox system ...                  the appliance init's helpers
  postbox tls selfsigned [--force]    make a new self-signed certificate
  postbox check-config [FILE]         check a config file: ok, or each problem
  postbox import USER PATH            add an mbox file or a Maildir folder to a mailbox
  postbox export USER [PATH|-]        write a mailbox as an mboxrd (default: stdout)
  postbox backup [PATH|-]             write the whole box as one archive (default: stdout)
  postbox backup --verify PATH        check an archive's every checksum
  postbox restore PATH --data DIR     restore an archive into a new data directory
  postbox sendmail [-t] [-i] [-f FROM] [RCPT...]
                                      send a message read from stdin, as sendmail
  postbox --help | --version

admin verbs (the console has the same):
";

const HELP_TAIL: &str = "
Every command takes --config FILE and --data DIR; 'user add' and 'user
passwd' also --password-stdin. 'postbox COMMAND --help' shows a command's
options.
";

/// Where the command line's help puts descriptions.
const COLUMN: usize = 38;
const SERVE_HELP: &str = "\
usage: postbox serve [OPTIONS]

Runs the mail box. With no config file: data in ./postbox-data, domain
localhost, on 127.0.0.1: SMTP 2525, POP3 2110, submission 2587 (STARTTLS),
submissions 2465 (TLS), POP3S 2995, web pages on HTTPS 2443 (plain HTTP
2080 sends browsers there), with a self-signed certificate.

options:
  --config FILE        TOML settings (see postbox.toml.example)
  --data DIR           data directory (mailboxes, users, spool)
  --smtp ADDR          SMTP listen address, e.g. 0.0.0.0:25
  --pop3 ADDR          POP3 listen address, e.g. 0.0.0.0:110
  --submission ADDR    submission (STARTTLS) address, or off
  --submissions ADDR   submission over TLS address, or off
  --pop3s ADDR         POP3 over TLS address, or off
  --web ADDR           HTTPS web pages address, e.g. 0.0.0.0:443, or off
  --http ADDR          plain HTTP address (redirects to HTTPS), or off
  --hostname NAME      name in greetings and Received: headers
  --domain D           also accept mail for D (repeatable)
  --dns-resolver ADDR  where DNS questions go, e.g. 192.168.1.1:53
                       (default: dns_resolver, else /etc/resolv.conf's)
  --log-level LEVEL    off, error, warn, info, debug or trace
  --allow-plaintext-on-loopback
                       accept passwords without TLS from 127.0.0.1 and ::1
  --user NAME          after binding the ports as root, run as NAME
  --log-ring FILE      also append the log to FILE, kept to 64-128 KiB
                       (on a RAM disk; the admin console's `log` shows it)
";

const TLS_NOTES: &str =
    "  postbox tls selfsigned [--force]      make a self-signed certificate for the
                                        hostname in DATA/tls (--force replaces one)

The listeners present the ACME certificate while [acme] is enabled and it
is valid, else the [tls] files, else the self-signed one. 'tls show' says
which, what it says and, with ACME, the last renewal and error. A running
server picks up a changed certificate at its next connection.

options:
  --config FILE  --data DIR  --hostname NAME  --force
";

const USER_NOTES: &str = "
NAME is 'local' (default domain) or 'local@domain', where the domain is
served: in the config's `domains`, given with --domain, or served by the
server running on the data directory (which may have --domain). Without
--password-stdin the password is asked twice on the terminal, unechoed.
SIZE is 500M, 2G, unlimited, or default (from the config). 'user forward
NAME ADDRESS... --keep' also keeps a copy; 'off' stops forwarding.
'user away NAME UNTIL SUBJECT...' takes the away message's text from
--text TEXT, or else from stdin up to its end or a line holding only '.';
replies stop at the start of UNTIL (UTC; '-': no end), 'off' stops them.
Changes apply to a running server at once.

options:
  --config FILE  --data DIR  --domain D  --password-stdin  --keep  --text TEXT
";
const ALIAS_NOTES: &str = "
TARGET is a user, another alias, or any address. NAME is 'name' (every
served domain) or 'name@domain'. The aliases file (DATA/aliases, or
`aliases` in the config) uses /etc/aliases syntax and may be edited by
hand; a running server reads changes at once.

options:
  --config FILE  --data DIR
";
const QUEUE_NOTES: &str = "
'queue list' shows each waiting message: id, age, sender, recipients,
last error and next try.

options:
  --config FILE  --data DIR
";
const FETCH_NOTES: &str = "
Entries are the config's [[fetch]] tables; the server runs each every
'every'. 'fetch now' asks the running server (as 'queue flush' does), or
with none running runs the entries itself.

options:
  --config FILE  --data DIR
";
const DKIM_NOTES: &str = "
Each served domain has an RSA 2048 and an Ed25519 key, in DATA/dkim, made
on first use; selectors are `[dkim] selector` (default: pb and the year and
month) with r or e appended. The records print as zone file lines, long
values split into strings of at most 255 characters. After 'dkim rotate'
signing uses the new keys: publish their records at once; the old records
may go after a week.

options:
  --config FILE  --data DIR  --domain D
";
const DNS_NOTES: &str = "
'dns records' prints each record a served domain needs as zone file lines,
each after a comment saying what it is for (DKIM keys are made if
missing). 'dns check' asks the resolver (`dns_resolver` in the config) for
each and prints ok, missing, wrong or unknown; exit status 1 when any
needs attention.

options:
  --config FILE  --data DIR  --domain D  --hostname NAME  --dns-resolver ADDR
";
const BOOK_HELP: &str = "\
usage: postbox book NAME list
       postbox book NAME add ADDRESS [DISPLAY NAME...]
       postbox book NAME del ADDRESS
       postbox book NAME export [PATH|-]     [--config FILE] [--data DIR]

A member's address book: everyone they wrote to through Postbox and who
wrote to them (mail that was not spam), learned by itself with the names
the mail gave, and the entries added here. 'list' prints one entry a line
(address, then the name); 'export' writes vCards (RFC 6350, version 4.0)
to PATH or stdout. Changes count at once in a running server.
";

const STATS_HELP: &str = "\
usage: postbox stats [--config FILE] [--data DIR]

Messages and bytes received, copies delivered to mailboxes, logins,
connections per listener and refusals by reply code, since counting began.
A running server writes them at most once a minute, when it stops, and
when this command (or the console's `stats`) asks: the figures are live.
";

const STATUS_HELP: &str = "\
usage: postbox status [--config FILE] [--data DIR]

Whether the server runs (its pid, uptime and listeners), the certificate,
domains, users, damaged files, stored mail, the disk and the machine: what
the console's 'status' shows.
";

const CONSOLE_HELP: &str = "\
usage: postbox console [--config FILE] [--data DIR]
       postbox console --admin [--user NAME] [--log-ring FILE] ...

The admin shell on stdin/stdout: user add|passwd|del|list, status, help.
With --admin it is the appliance's serial console: it asks for the admin
password (on first use it has one chosen, unless the config gives
admin_password_hash), edits lines itself on a raw terminal, and adds log,
reboot, poweroff, passwd and a guarded repair shell. --user NAME: act on
the data directory as NAME (the server's user).
";

const SYSTEM_HELP: &str = "\
usage:
  postbox system grow-part DEVICE         grow the last MBR partition to the card's end
  postbox system grow-fs DEVICE MOUNT     grow a mounted ext4 to fill its partition
  postbox system ntp SERVER...            set the clock from the first answering server
  postbox system admin-hash               read a password on stdin, print its hash
                                          (for admin_password_hash in postbox.toml)
  postbox system backup-due               back up to a plugged-in USB stick when
                                          [backup] every says one is due (as root)
";

const CHECK_CONFIG_HELP: &str = "\
usage: postbox check-config [FILE] [OPTIONS]

Reads FILE (or --config FILE; neither: the built-in defaults) with the
flags given, as 'serve' would, and prints 'ok', or each problem on a line
of its own, naming the key. Exit status: 0 ok, 1 problems, 2 usage error.

options:
  --config FILE  --data DIR  --domain D  --hostname NAME  ...
";

const IMPORT_HELP: &str = "\
usage: postbox import USER PATH [--config FILE] [--data DIR]

Adds the messages of PATH to USER's mailbox: an mbox file (mboxrd or
mboxo, as Google Takeout or Thunderbird write them; '>From ' lines lose
one '>') or a Maildir folder (its cur/ and new/; messages in cur/ keep
their flags). Each message is stored as a delivery is, durably, and
counts against the quota: one that does not fit is skipped and said so.
Running it again adds nothing twice (a message's file name holds a hash
of its bytes); a message deleted from the mailbox since comes back. It
may run while the server does; POP3 sees the messages at its next login.
Progress goes to stderr on a terminal; a summary ends it.
";

const EXPORT_HELP: &str = "\
usage: postbox export USER [PATH|-] [--config FILE] [--data DIR]

Writes USER's mailbox, oldest first, to PATH (or stdout) as an mboxrd:
each message after a 'From ' line with its envelope sender (from
Return-Path:) and arrival time, lines starting '>*From ' given one more
'>', LF line ends, an empty line after each.
";

const BACKUP_HELP: &str = "\
usage: postbox backup [PATH|-] [--config FILE] [--data DIR]
       postbox backup --verify PATH

Writes the whole box - users, aliases, forwards, quotas, mailboxes, the
queue, certificates, DKIM keys, away messages, address books, stats and
the config file given with --config - to PATH (or stdout) as one tar
whose first member, postbox-backup.json, lists every file with its size
and SHA-256. It may run while the server does: each file is in it whole,
and every message acknowledged before it started is in it (unless a POP3
session deleted it meanwhile). PATH appears only once complete and
fsynced. --verify reads an archive through, checks every checksum and
prints a summary; a damaged one exits 1 naming the file.
";

const RESTORE_HELP: &str = "\
usage: postbox restore PATH|- --data DIR

Restores an archive of postbox backup into DIR, which must be new or
empty. Every checksum is checked and every file fsynced before DIR
appears (the files are written beside it, then renamed): a damaged
archive is refused naming the file, and leaves no DIR. The config file
goes to DIR/restored-config/. Run it as the server's user (or chown -R).
";

const SENDMAIL_HELP: &str = "\
usage: postbox sendmail [-t] [-i|-oi] [-f FROM] [-F NAME] [RCPT...]
       (also as 'sendmail ...', through a link named sendmail)

Reads a message from stdin, up to its end or a line holding only '.'
(with -i or -oi: up to its end), and hands it to the server through the
maildrop (DATA/maildrop): it exits 0 once the message is durable there.
A running server is told at once; one that is not running sends it when
it starts. It goes as a trusted client's mail: local recipients get it,
others through the queue, DKIM-signed. The sender is the local user at
the default domain (root@DOMAIN) unless -f names a member's address; -F
names the From: it gets when it has none (and Date:, Message-ID:). With
-t the recipients also come from To:, Cc: and Bcc:, and Bcc: is removed.
A RCPT without a domain is at the default domain. The config is
--config FILE, else $POSTBOX_CONFIG, else /etc/postbox.toml if present.
";

enum Failure {
    Usage(String),
    Failed(String),
    /// Failed, and the output already says why.
    Reported,
}

impl From<lexopt::Error> for Failure {
    fn from(e: lexopt::Error) -> Self {
        Failure::Usage(e.to_string())
    }
}

fn usage<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Usage(msg.into()))
}

fn main() -> ExitCode {
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(msg)) => {
            eprintln!("postbox: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Reported) => ExitCode::from(1),
        Err(Failure::Usage(msg)) => {
            eprintln!("postbox: {msg}\nTry 'postbox --help'.");
            ExitCode::from(2)
        }
    }
}

/// Options and positional words of one command line.
#[derive(Default)]
struct Args {
    overrides: Overrides,
    words: Vec<String>,
    password_stdin: bool,
    force: bool,
    keep: bool,
    verify: bool,
    /// `--text TEXT`: a verb's text given on the command line.
    text: Option<String>,
    help: bool,
    admin: bool,
    log_ring: Option<std::path::PathBuf>,
}

fn parse_args(mut parser: lexopt::Parser) -> Result<Args, Failure> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let o = &mut args.overrides;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => args.help = true,
            Long("config") => o.config_file = Some(parser.value()?.into()),
            Long("data") => o.data_dir = Some(parser.value()?.into()),
            Long("smtp") => o.smtp = Some(parser.value()?.parse()?),
            Long("pop3") => o.pop3 = Some(parser.value()?.parse()?),
            Long("hostname") => o.hostname = Some(parser.value()?.string()?),
            Long("domain") => o.domains.push(parser.value()?.string()?),
            Long("dns-resolver") => o.dns_resolver = Some(parser.value()?.parse()?),
            Long("log-level") => {
                o.log_level = Some(parse_level(&parser.value()?.string()?).map_err(Failure::Usage)?)
            }
            Long("submission") => o.submission = Some(listen(&mut parser)?),
            Long("submissions") => o.submissions = Some(listen(&mut parser)?),
            Long("pop3s") => o.pop3s = Some(listen(&mut parser)?),
            Long("web") => o.web = Some(listen(&mut parser)?),
            Long("http") => o.http = Some(listen(&mut parser)?),
            Long("allow-plaintext-on-loopback") => o.allow_plaintext_on_loopback = true,
            Long("password-stdin") => args.password_stdin = true,
            Long("force") => args.force = true,
            Long("keep") => args.keep = true,
            Long("verify") => args.verify = true,
            Long("text") => args.text = Some(parser.value()?.string()?),
            Long("admin") => args.admin = true,
            Long("user") => o.run_as = Some(parser.value()?.string()?),
            Long("log-ring") => args.log_ring = Some(parser.value()?.into()),
            Value(v) => args.words.push(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(args)
}

fn listen(parser: &mut lexopt::Parser) -> Result<postbox::config::Listen, Failure> {
    use lexopt::prelude::*;
    parse_listen(&parser.value()?.string()?).map_err(Failure::Usage)
}

/// Commands that read or change the data directory, run as its owner.
const OWNER_COMMANDS: &[&str] = &[
    "user", "alias", "queue", "stats", "status", "tls", "dkim", "dns", "import", "export",
    "backup", "fetch", "book",
];

/// `postbox sendmail ...`, or postbox called through a link named
/// sendmail (programs give it sendmail's options); else [`run`].
fn start() -> Result<(), Failure> {
    let mut argv = std::env::args_os();
    let called = argv.next().unwrap_or_default();
    let name = std::path::Path::new(&called)
        .file_name()
        .unwrap_or_default();
    if name == "sendmail" {
        return sendmail(&argv.collect::<Vec<_>>());
    }
    if argv.next().is_some_and(|first| first == "sendmail") {
        return sendmail(&argv.collect::<Vec<_>>());
    }
    run()
}

fn run() -> Result<(), Failure> {
    let mut parser = lexopt::Parser::from_env();
    use lexopt::prelude::*;
    let command = match parser.next()? {
        None => return usage("no command given"),
        Some(Short('h') | Long("help")) => {
            let verbs = admin::verbs::command_line_help("", COLUMN);
            print!("{HELP_HEAD}{verbs}{HELP_TAIL}");
            return Ok(());
        }
        Some(Short('V') | Long("version")) => {
            println!("postbox {VERSION}");
            return Ok(());
        }
        Some(Value(v)) => v.string()?,
        Some(other) => return Err(other.unexpected().into()),
    };
    let args = parse_args(parser)?;
    if !args.help && OWNER_COMMANDS.contains(&command.as_str())
        || command == "console" && !args.admin && !args.help
    {
        let config = load_config(&args)?;
        let changed = match command.as_str() {
            "alias" => config.aliases.clone(),
            _ => config.data_dir.clone(),
        };
        act_as_owner_of(&changed)?;
    }
    let help = |text: &str| {
        print!("{text}");
        Ok(())
    };
    match command.as_str() {
        "serve" if args.help => help(SERVE_HELP),
        "serve" => {
            if let Some(extra) = args.words.first() {
                return usage(format!("serve takes no argument {extra:?}"));
            }
            let config = load_config(&args)?;
            postbox::ops::logring::RingLogger::new(config.log_level, args.log_ring.as_deref())
                .and_then(|logger| logger.init())
                .map_err(Failure::Failed)?;
            server::run(config).map_err(|e| {
                // On the board stderr goes nowhere: the ring is where it is read.
                if args.log_ring.is_some() {
                    log::error!("{e}");
                }
                Failure::Failed(e)
            })
        }
        "user" if args.help => help(&group_help("user", USER_NOTES)),
        "user" => admin_verb(&command, &args),
        "console" if args.help => help(CONSOLE_HELP),
        "console" => {
            if let Some(extra) = args.words.first() {
                return usage(format!("console takes no argument {extra:?}"));
            }
            let config = load_config(&args)?;
            let stdin = console::StdIo(std::io::stdin().lock());
            let stdout = console::StdIo(std::io::stdout().lock());
            if !args.admin {
                return console::run(&config, stdin, stdout)
                    .map_err(|e| Failure::Failed(e.to_string()));
            }
            admin_console(&config, &args, stdin, stdout)
        }
        "book" if args.help => help(BOOK_HELP),
        "stats" if args.help => help(STATS_HELP),
        "status" if args.help => help(STATUS_HELP),
        "alias" if args.help => help(&group_help("alias", ALIAS_NOTES)),
        "queue" if args.help => help(&group_help("queue", QUEUE_NOTES)),
        "fetch" if args.help => help(&group_help("fetch", FETCH_NOTES)),
        "dkim" if args.help => help(&group_help("dkim", DKIM_NOTES)),
        "dns" if args.help => help(&group_help("dns", DNS_NOTES)),
        "book" | "stats" | "status" | "alias" | "queue" | "fetch" | "dkim" | "dns" => {
            admin_verb(&command, &args)
        }
        "tls" if args.help => help(&group_help("tls", TLS_NOTES)),
        "tls" if args.words.first().is_some_and(|w| w == "selfsigned") => tls_selfsigned(&args),
        "tls" => admin_verb(&command, &args),
        "import" if args.help => help(IMPORT_HELP),
        "import" => import(&args),
        "export" if args.help => help(EXPORT_HELP),
        "export" => export(&args),
        "backup" | "restore" => backup_or_restore(&command, &args),
        "check-config" if args.help => help(CHECK_CONFIG_HELP),
        "check-config" => check_config(args),
        "system" if args.help => help(SYSTEM_HELP),
        "system" => system(&args),
        other => usage(format!("unknown command {other:?}")),
    }
}

/// The appliance's serial console: as root, but working on the data
/// directory as the server's user.
fn admin_console(
    config: &Config,
    args: &Args,
    stdin: console::StdIo<std::io::StdinLock<'static>>,
    stdout: console::StdIo<std::io::StdoutLock<'static>>,
) -> Result<(), Failure> {
    let account = match &config.run_as {
        Some(name) => {
            let account = appliance::system::account(name).map_err(Failure::Failed)?;
            appliance::system::act_as(account).map_err(Failure::Failed)?;
            Some(account)
        }
        None => None,
    };
    let terminal = appliance::board::RawTerminal::new();
    let options = console::Options {
        admin: true,
        echo: terminal.is_raw(),
        log_ring: args.log_ring.clone(),
        config_file: args.overrides.config_file.clone(),
        ..Default::default()
    };
    let mut board = appliance::board::Board { terminal, account };
    console::run_with(config, &options, &mut board, stdin, stdout)
        .map_err(|e| Failure::Failed(e.to_string()))
}

/// Run by root, an admin command becomes the owner of what it changes
/// (the data directory's owner is the server's user), so every file it
/// makes is one the running server can read and replace, as if the server
/// had made it. The aliases file, which may live elsewhere, has its own
/// owner (or its directory's, before it exists).
fn act_as_owner_of(path: &std::path::Path) -> Result<(), Failure> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let owner = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(path.parent().unwrap_or(path)))
        .ok()
        .filter(|meta| meta.uid() != 0);
    match owner {
        // Nothing there yet, or root's own: root makes it.
        None => Ok(()),
        Some(meta) => appliance::system::drop_root(appliance::system::Account {
            uid: meta.uid(),
            gid: meta.gid(),
        })
        .map_err(|e| {
            Failure::Failed(format!(
                "cannot act as the owner of {}: {e}",
                path.display()
            ))
        }),
    }
}

/// `check-config [FILE]`: every problem, one per line, or `ok`.
fn check_config(mut args: Args) -> Result<(), Failure> {
    match (args.words.as_slice(), &args.overrides.config_file) {
        ([], _) => {}
        ([file], None) => args.overrides.config_file = Some(file.into()),
        ([_], Some(_)) => return usage("check-config takes FILE or --config FILE, not both"),
        ([_, extra, ..], _) => return usage(format!("check-config takes one FILE, not {extra:?}")),
    }
    match Config::check(&args.overrides) {
        Ok(_) => {
            println!("ok");
            Ok(())
        }
        Err(problems) => {
            for problem in problems {
                println!("{problem}");
            }
            Err(Failure::Reported)
        }
    }
}

/// `postbox system ...`: the appliance's helpers for init.
fn system(args: &Args) -> Result<(), Failure> {
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    let done = match words.as_slice() {
        ["admin-hash"] => admin_hash(),
        ["backup-due"] => {
            let config = load_config(args)?;
            console::unattended_backup(&config, args.overrides.config_file.as_deref())
        }
        // The supplicant's configuration for the init (empty: no Wi-Fi).
        ["wifi-conf"] => load_config(args)
            .map_err(|_| ())
            .map(|config| {
                config.wifi.map_or(String::new(), |w| {
                    appliance::wifi::supplicant_conf(&w, appliance::wifi::CONTROL_DIR)
                })
            })
            .or(Ok(String::new())),
        _ => appliance::system::command(&words),
    };
    println!("{}", done.map_err(Failure::Failed)?);
    Ok(())
}

fn load_config(args: &Args) -> Result<Config, Failure> {
    Config::load(&args.overrides).map_err(Failure::Failed)
}

/// `postbox user --help`: the group's verbs from the table, then `notes`.
fn group_help(group: &str, notes: &str) -> String {
    let verbs = admin::verbs::command_line_help(group, COLUMN);
    format!("usage:\n{verbs}{notes}")
}

/// A verb of the admin table: `user add NAME`, `queue list`, `status`.
fn admin_verb(command: &str, args: &Args) -> Result<(), Failure> {
    let words: Vec<&str> = std::iter::once(command)
        .chain(args.words.iter().map(String::as_str))
        .collect();
    let config = load_config(args)?;
    let (verb, rest) = match admin::lookup(&words) {
        admin::Lookup::Verb(verb, rest) => (verb, rest),
        admin::Lookup::Group(group) => match words.get(1) {
            None => return usage(admin::verbs::group_usage(group)),
            Some(other) => return usage(format!("unknown {group} subcommand {other:?}")),
        },
        admin::Lookup::Unknown => return usage(format!("unknown command {command:?}")),
    };
    let Some((verb_args, _)) = verb.arguments(rest) else {
        return usage(verb.usage());
    };
    let password = match verb.password {
        true => read_password(args.password_stdin)?,
        false => String::new(),
    };
    let text = match (verb.text)(&verb_args) {
        false => String::new(),
        true => match &args.text {
            Some(text) => text.clone(),
            None => read_text()?,
        },
    };
    let request = admin::Request {
        args: &verb_args,
        password,
        keep: verb.keep && args.keep,
        text,
    };
    match (verb.run)(&config, &request).map_err(Failure::Failed)? {
        admin::Output::Text(text) if text.ends_with('\n') => print!("{text}"),
        admin::Output::Text(text) => println!("{text}"),
        admin::Output::List(items, _) => {
            for item in items {
                println!("{item}");
            }
        }
    }
    Ok(())
}

/// `import USER PATH`: progress on a terminal, the summary at the end.
fn import(args: &Args) -> Result<(), Failure> {
    let [user, path] = args.words.as_slice() else {
        return usage("usage: postbox import USER PATH");
    };
    let config = load_config(args)?;
    let terminal = std::io::stderr().is_terminal();
    let mut shown = std::time::Instant::now();
    let mut progress = |so_far: &postbox::mailio::import::Summary| {
        if terminal && shown.elapsed() >= std::time::Duration::from_millis(200) {
            shown = std::time::Instant::now();
            eprint!(
                "\r{} messages imported, {} already there, {} skipped; {} read",
                so_far.imported,
                so_far.already,
                so_far.skipped.len(),
                postbox::mailio::human_bytes(so_far.read)
            );
        }
    };
    let result = postbox::mailio::import::import(&config, user, path.as_ref(), &mut progress);
    if terminal {
        eprint!("\r\x1b[K");
    }
    let account = postbox::mailio::import::member_mailbox(&config, user)
        .map(|(a, _)| a)
        .unwrap_or_else(|_| user.clone());
    match result {
        Ok(summary) => {
            print!("{}", summary.report(&account));
            Ok(())
        }
        Err((e, summary)) => {
            if let Some(summary) = summary {
                print!("{}", summary.report(&account));
            }
            Err(Failure::Failed(e))
        }
    }
}

/// `export USER [PATH|-]`.
fn export(args: &Args) -> Result<(), Failure> {
    let (user, path) = match args.words.as_slice() {
        [user] => (user, "-"),
        [user, path] => (user, path.as_str()),
        _ => return usage("usage: postbox export USER [PATH|-]"),
    };
    let config = load_config(args)?;
    // Checked before PATH is made, so a mistyped user leaves no file.
    postbox::mailio::import::member_mailbox(&config, user).map_err(Failure::Failed)?;
    let done = match path {
        "-" => {
            let stdout = std::io::stdout().lock();
            let mut out = std::io::BufWriter::with_capacity(postbox::limits::WRITE_CHUNK, stdout);
            postbox::mailio::export::export(&config, user, &mut out)
        }
        path => {
            let file = std::fs::File::create(path)
                .map_err(|e| Failure::Failed(format!("cannot write {path}: {e}")))?;
            let mut out = std::io::BufWriter::with_capacity(postbox::limits::WRITE_CHUNK, file);
            let done = postbox::mailio::export::export(&config, user, &mut out);
            // An mbox that may be partly on disk only is not reported done.
            done.and_then(|counted| {
                let file = out
                    .into_inner()
                    .map_err(|e| format!("cannot write {path}: {e}"))?;
                file.sync_all()
                    .map_err(|e| format!("cannot write {path}: {e}"))?;
                Ok(counted)
            })
        }
    };
    let (count, bytes) = done.map_err(Failure::Failed)?;
    if path != "-" {
        println!(
            "exported {count} messages ({}) to {path}",
            postbox::mailio::human_bytes(bytes)
        );
    }
    Ok(())
}

fn backup_or_restore(command: &str, args: &Args) -> Result<(), Failure> {
    match command {
        "backup" if args.help => print!("{BACKUP_HELP}"),
        "restore" if args.help => print!("{RESTORE_HELP}"),
        "backup" if args.verify => return backup_verify(args),
        "backup" => return backup(args),
        _ => return restore(args),
    }
    Ok(())
}

/// `backup [PATH|-]`: written beside PATH, fsynced, renamed.
fn backup(args: &Args) -> Result<(), Failure> {
    use postbox::mailio::backup;
    let path = match args.words.as_slice() {
        [] => "-",
        [path] => path.as_str(),
        _ => return usage("usage: postbox backup [PATH|-]"),
    };
    let config = load_config(args)?;
    let config_file = args.overrides.config_file.as_deref();
    let data = &config.data_dir;
    if !data.is_dir() {
        return Err(Failure::Failed(format!(
            "no data directory {}",
            data.display()
        )));
    }
    if path == "-" {
        let stdout = std::io::stdout().lock();
        let mut out = std::io::BufWriter::with_capacity(postbox::limits::WRITE_CHUNK, stdout);
        backup::backup(data, config_file, &config.hostname, &mut out).map_err(Failure::Failed)?;
        return Ok(());
    }
    let failed = |e: std::io::Error| Failure::Failed(format!("cannot write {path}: {e}"));
    let target = std::path::Path::new(path);
    let mut temporary = target.as_os_str().to_owned();
    temporary.push(format!(".partial-{}", std::process::id()));
    let temporary = std::path::PathBuf::from(temporary);
    let file = std::fs::File::create(&temporary).map_err(failed)?;
    let mut out = std::io::BufWriter::with_capacity(postbox::limits::WRITE_CHUNK, file);
    let done = backup::backup(data, config_file, &config.hostname, &mut out)
        .map_err(Failure::Failed)
        .and_then(|summary| {
            let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
            file.sync_all().map_err(failed)?;
            std::fs::rename(&temporary, target).map_err(failed)?;
            let parent = match target.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => std::path::Path::new("."),
            };
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(failed)?;
            Ok(summary)
        });
    if done.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    println!("backed up {} to {path}", done?.report());
    Ok(())
}

/// An archive named on the command line, or stdin for `-`.
fn archive_input(path: &str) -> Result<Box<dyn std::io::Read>, Failure> {
    let capacity = postbox::limits::MAILIO_PIECE;
    match path {
        "-" => Ok(Box::new(std::io::BufReader::with_capacity(
            capacity,
            std::io::stdin(),
        ))),
        path => std::fs::File::open(path)
            .map(|f| Box::new(std::io::BufReader::with_capacity(capacity, f)) as Box<_>)
            .map_err(|e| Failure::Failed(format!("cannot read {path}: {e}"))),
    }
}

/// `backup --verify PATH`.
fn backup_verify(args: &Args) -> Result<(), Failure> {
    let [path] = args.words.as_slice() else {
        return usage("usage: postbox backup --verify PATH");
    };
    let mut input = archive_input(path)?;
    let summary =
        postbox::mailio::backup::read_archive(&mut input, &mut postbox::mailio::backup::Discard)
            .map_err(|e| Failure::Failed(format!("{path}: {e}")))?;
    println!("{path}: {}: every checksum matches", summary.report());
    Ok(())
}

/// `restore PATH --data DIR`.
fn restore(args: &Args) -> Result<(), Failure> {
    let [path] = args.words.as_slice() else {
        return usage("usage: postbox restore PATH --data DIR");
    };
    let Some(dir) = &args.overrides.data_dir else {
        return usage("restore needs --data DIR, the directory to restore into");
    };
    let mut input = archive_input(path)?;
    let summary = postbox::mailio::backup::restore(&mut input, dir)
        .map_err(|e| Failure::Failed(format!("{path}: {e}")))?;
    println!("restored {} into {}", summary.report(), dir.display());
    Ok(())
}

/// `sendmail [-t] [-i] [-f FROM] [-F NAME] [RCPT...]`.
fn sendmail(args: &[std::ffi::OsString]) -> Result<(), Failure> {
    use postbox::mailio::sendmail;
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{SENDMAIL_HELP}");
        return Ok(());
    }
    let options = sendmail::parse_options(args).map_err(Failure::Usage)?;
    let config_file = options
        .config
        .clone()
        .or_else(|| std::env::var_os("POSTBOX_CONFIG").map(Into::into))
        .or_else(|| {
            let etc = std::path::PathBuf::from("/etc/postbox.toml");
            etc.is_file().then_some(etc)
        });
    let overrides = Overrides {
        config_file,
        data_dir: options.data.clone(),
        ..Overrides::default()
    };
    let config = Config::load(&overrides).map_err(Failure::Failed)?;
    // Who runs it, before root becomes the data directory's owner.
    let login = sendmail::login_name();
    act_as_owner_of(&config.data_dir)?;
    let stdin = std::io::stdin().lock();
    let dropped =
        sendmail::drop_message(&config, &options, &login, stdin).map_err(Failure::Failed)?;
    if !dropped.server_running {
        eprintln!(
            "postbox: no server is running on {}: the message waits in the maildrop and goes when it starts",
            config.data_dir.display()
        );
    }
    Ok(())
}

/// `tls selfsigned [--force]`.
fn tls_selfsigned(args: &Args) -> Result<(), Failure> {
    if let Some(extra) = args.words.get(1) {
        return usage(format!("tls selfsigned takes no argument {extra:?}"));
    }
    let config = load_config(args)?;
    let paths = postbox::tls::CertPaths::of(&config);
    if paths.origin != postbox::tls::Origin::SelfSigned {
        return Err(Failure::Failed(format!(
            "the config names a certificate ({}); selfsigned manages only the data directory's",
            paths.cert.display()
        )));
    }
    if paths.cert.exists() && !args.force {
        return Err(Failure::Failed(format!(
            "{} exists; use --force to replace it",
            paths.cert.display()
        )));
    }
    let info = postbox::tls::make_self_signed(&paths, &config.hostname).map_err(Failure::Failed)?;
    println!("certificate: {}", paths.cert.display());
    println!("subject:     {}", info.subject);
    println!("valid from:  {}", info.not_before);
    println!("valid until: {}", info.not_after);
    println!("SHA-256:     {}", info.fingerprint);
    Ok(())
}

/// A verb's text from stdin: up to its end or a line holding only `.`.
fn read_text() -> Result<String, Failure> {
    let mut text = String::new();
    for line in std::io::stdin().lines() {
        let line = line.map_err(|e| Failure::Failed(format!("cannot read the text: {e}")))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if line == "." {
            break;
        }
        text.push_str(line);
        text.push('\n');
    }
    Ok(text)
}

/// `system admin-hash`: a password read from stdin, as its Argon2 hash.
fn admin_hash() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read password: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']);
    postbox::auth::password::check_new(password)?;
    Ok(postbox::auth::password::hash(password))
}

/// One line from stdin, or asked twice without echo on the terminal.
fn read_password(from_stdin: bool) -> Result<String, Failure> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Failed(format!("cannot read password: {e}")))?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        return Ok(password.strip_suffix('\r').unwrap_or(password).to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Failed(
            "no terminal to ask for a password; use --password-stdin".into(),
        ));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map_err(|e| Failure::Failed(format!("cannot read password: {e}")))
    };
    let first = ask("Password: ")?;
    if ask("Again: ")? != first {
        return Err(Failure::Failed("passwords do not match".into()));
    }
    Ok(first)
}
