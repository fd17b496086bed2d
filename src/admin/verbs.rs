//! The admin verbs, each declared once: its words, its arguments, its help
//! line and what it does. The command line (`postbox user add NAME`) and
//! the console (`user add NAME`) both look verbs up here; each only reads
//! its input its own way (flags, a password) and shows the result.

use super::*;

/// What a verb is given besides the config.
pub struct Request<'a> {
    /// The words after the verb's name (without `--keep`).
    pub args: &'a [&'a str],
    /// The new password, for a verb that asks for one.
    pub password: String,
    /// `--keep`, for a verb that takes it.
    pub keep: bool,
    /// The text a verb reads (an away message's), empty when it needs none.
    pub text: String,
}

/// What a verb gives back to show.
pub enum Output {
    /// Text as it is, one line or several.
    Text(String),
    /// One line per item. On the command line an empty list prints
    /// nothing (scripts read one item a line); the console says `none`.
    List(Vec<String>, &'static str),
}

pub struct Verb {
    /// The words that name it: `["user", "add"]`.
    pub name: &'static [&'static str],
    /// Its arguments as help shows them: `NAME SIZE`.
    pub args: &'static str,
    /// How many arguments it takes, at least and at most.
    pub arity: (usize, usize),
    pub help: &'static str,
    /// It asks for a new password (twice) before it runs.
    pub password: bool,
    /// It takes `--keep`.
    pub keep: bool,
    /// Whether, with these arguments, it reads a text: on the command
    /// line `--text TEXT`, or else stdin up to its end or a line holding
    /// only `.`; on the console, lines up to one holding only `.`.
    pub text: fn(&[&str]) -> bool,
    pub run: fn(&Config, &Request) -> Result<Output, String>,
}

const MANY: usize = usize::MAX;

const fn verb(
    name: &'static [&'static str],
    args: &'static str,
    arity: (usize, usize),
    help: &'static str,
    run: fn(&Config, &Request) -> Result<Output, String>,
) -> Verb {
    Verb {
        name,
        args,
        arity,
        help,
        password: false,
        keep: false,
        text: |_| false,
        run,
    }
}

fn text(result: Result<String, String>) -> Result<Output, String> {
    result.map(Output::Text)
}

/// Every admin verb, in the order help lists them.
pub const VERBS: &[Verb] = &[
    Verb {
        password: true,
        ..verb(
            &["user", "add"],
            "NAME",
            (1, 1),
            "add a user (NAME is local or local@domain); asks for the password",
            |c, r| text(add_user(c, r.args[0], &r.password).map(|a| format!("added {a}"))),
        )
    },
    Verb {
        password: true,
        ..verb(
            &["user", "passwd"],
            "NAME",
            (1, 1),
            "set a new password",
            |c, r| {
                text(
                    set_password(c, r.args[0], &r.password)
                        .map(|a| format!("password changed for {a}")),
                )
            },
        )
    },
    verb(
        &["user", "del"],
        "NAME",
        (1, 1),
        "remove a user and their mail",
        |c, r| text(delete_user(c, r.args[0]).map(|a| format!("deleted {a}"))),
    ),
    verb(&["user", "list"], "", (0, 0), "list users", |c, _| {
        list_users(c).map(|users| Output::List(users, "no users"))
    }),
    verb(
        &["user", "quota"],
        "NAME SIZE",
        (2, 2),
        "mailbox limit: 500M, 2G, unlimited or default",
        |c, r| text(set_quota(c, r.args[0], r.args[1])),
    ),
    Verb {
        keep: true,
        ..verb(
            &["user", "forward"],
            "NAME ADDRESS [--keep] | off",
            (2, MANY),
            "send NAME's mail on",
            |c, r| text(set_forward(c, r.args[0], &r.args[1..], r.keep)),
        )
    },
    Verb {
        text: |args| args.len() > 1 && args[1] != "off",
        ..verb(
            &["user", "away"],
            "NAME [off | UNTIL [SUBJECT...]]",
            (1, MANY),
            "away message: show, off, or on until UNTIL (YYYY-MM-DD, - none)",
            |c, r| text(set_away(c, r.args[0], &r.args[1..], &r.text)),
        )
    },
    verb(
        &["alias", "add"],
        "NAME TARGET...",
        (2, MANY),
        "NAME's mail goes to every TARGET (aliases and club lists)",
        |c, r| text(alias_add(c, r.args[0], &r.args[1..])),
    ),
    verb(
        &["alias", "del"],
        "NAME",
        (1, 1),
        "remove an alias",
        |c, r| text(alias_del(c, r.args[0])),
    ),
    verb(&["alias", "list"], "", (0, 0), "list aliases", |c, _| {
        alias_list(c).map(|aliases| Output::List(aliases, "no aliases"))
    }),
    verb(
        &["book"],
        "NAME list|add|del|export",
        (2, MANY),
        "a member's address book: list, add, del, export",
        |c, r| book::run(c, r.args),
    ),
    verb(
        &["queue", "list"],
        "",
        (0, 0),
        "mail waiting to leave",
        |c, _| text(queue_list(c)),
    ),
    verb(
        &["queue", "flush"],
        "",
        (0, 0),
        "the running server tries every message now",
        |c, _| text(queue_flush(c)),
    ),
    verb(
        &["queue", "adopt"],
        "NODE",
        (1, 1),
        "take a dead cluster node's queue (once) and send it from here",
        |c, r| text(queue_adopt(c, r.args[0])),
    ),
    verb(
        &["queue", "delete"],
        "ID",
        (1, 1),
        "drop a waiting message (no report is sent)",
        |c, r| text(queue_delete(c, r.args[0])),
    ),
    verb(
        &["fetch", "list"],
        "",
        (0, 0),
        "upstream mailboxes fetched from: last run, result, messages",
        |c, _| {
            Ok(Output::List(
                crate::fetch::state::list(c),
                "no [[fetch]] entries",
            ))
        },
    ),
    verb(
        &["fetch", "now"],
        "[USER]",
        (0, 1),
        "fetch now (USER's entries): the running server, or here",
        |c, r| {
            text(crate::fetch::schedule::request_now(
                c,
                r.args.first().copied(),
            ))
        },
    ),
    verb(
        &["dkim", "show"],
        "[DOMAIN]",
        (0, 1),
        "DKIM records to publish (keys made if missing)",
        |c, r| text(dkim::show(c, r.args.first().copied())),
    ),
    verb(
        &["dkim", "rotate"],
        "DOMAIN",
        (1, 1),
        "new DKIM keys; says which old records may go",
        |c, r| text(dkim::rotate(c, r.args[0])),
    ),
    verb(
        &["dns", "records"],
        "[DOMAIN]",
        (0, 1),
        "every record to publish: MX, SPF, DKIM, DMARC, SRV",
        |c, r| text(dns::show(c, r.args.first().copied())),
    ),
    verb(
        &["dns", "check"],
        "[DOMAIN]",
        (0, 1),
        "asks the resolver for each record to publish; says what is missing",
        |c, r| text(dns::check(c, r.args.first().copied())),
    ),
    verb(
        &["tls", "show"],
        "",
        (0, 0),
        "the certificate in use (ACME, files, self-signed), renewal",
        |c, _| text(tls::show(c)),
    ),
    verb(
        &["tls", "renew"],
        "",
        (0, 0),
        "the running server renews its ACME certificate now",
        |c, _| text(tls::renew(c)),
    ),
    verb(
        &["status"],
        "",
        (0, 0),
        "server, listeners, users and stored mail",
        |c, _| Ok(Output::Text(status::status(c))),
    ),
    verb(
        &["stats"],
        "",
        (0, 0),
        "traffic counters: received, delivered, refused",
        |c, _| text(stats_report(c)),
    ),
];

/// What a command line names.
pub enum Lookup<'a> {
    /// A verb, and the words after its name (`--keep` left in).
    Verb(&'static Verb, &'a [&'a str]),
    /// A group's name alone (`user`), or with a word none of its verbs has.
    Group(&'static str),
    /// Nothing here.
    Unknown,
}

pub fn lookup<'a>(words: &'a [&'a str]) -> Lookup<'a> {
    let named = VERBS.iter().find(|v| words.starts_with(v.name));
    if let Some(verb) = named {
        return Lookup::Verb(verb, &words[verb.name.len()..]);
    }
    match VERBS
        .iter()
        .find(|v| v.name.len() > 1 && words.first() == Some(&v.name[0]))
    {
        Some(verb) => Lookup::Group(verb.name[0]),
        None => Lookup::Unknown,
    }
}

impl Verb {
    /// The arguments, when they fit (`--keep` taken out where it is a flag).
    pub fn arguments<'a>(&self, words: &[&'a str]) -> Option<(Vec<&'a str>, bool)> {
        let keep = self.keep && words.contains(&"--keep");
        let args: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| !(self.keep && *w == "--keep"))
            .collect();
        let (min, max) = self.arity;
        (min..=max).contains(&args.len()).then_some((args, keep))
    }

    /// `user quota NAME SIZE`.
    pub fn synopsis(&self) -> String {
        let name = self.name.join(" ");
        match self.args {
            "" => name,
            args => format!("{name} {args}"),
        }
    }

    /// The message when the arguments do not fit.
    pub fn usage(&self) -> String {
        match self.args {
            "" => format!("{} takes no arguments", self.name.join(" ")),
            _ => format!("usage: {}", self.synopsis()),
        }
    }
}

/// `user needs a subcommand: add, passwd, del or list`.
pub fn group_usage(group: &str) -> String {
    let subs: Vec<&str> = VERBS
        .iter()
        .filter(|v| v.name.len() > 1 && v.name[0] == group)
        .map(|v| v.name[1])
        .collect();
    let (last, rest) = subs.split_last().expect("a group has verbs");
    format!("{group} needs a subcommand: {} or {last}", rest.join(", "))
}

/// Help lines, `  synopsis   description`, with descriptions at `column`
/// (a long synopsis has its description on the next line).
pub fn help_lines(entries: &[(String, &str)], column: usize) -> String {
    let mut text = String::new();
    for (synopsis, help) in entries {
        let line = format!("  {synopsis}");
        if line.len() < column - 1 {
            text.push_str(&format!("{line:<column$}{help}\n"));
        } else {
            text.push_str(&format!("{line}\n{:column$}{help}\n", ""));
        }
    }
    text
}

/// Where the console's help puts descriptions.
pub const CONSOLE_COLUMN: usize = 25;

/// The console's help lines of every verb.
pub fn help() -> String {
    let entries: Vec<(String, &str)> = VERBS.iter().map(|v| (v.synopsis(), v.help)).collect();
    help_lines(&entries, CONSOLE_COLUMN)
}

/// The command line's help lines of the verbs whose name starts with
/// `group` (all of them for ""), as `postbox user add NAME`.
pub fn command_line_help(group: &str, column: usize) -> String {
    let entries: Vec<(String, &str)> = VERBS
        .iter()
        .filter(|v| group.is_empty() || v.name[0] == group)
        .map(|v| (format!("postbox {}", v.synopsis()), v.help))
        .collect();
    help_lines(&entries, column)
}
