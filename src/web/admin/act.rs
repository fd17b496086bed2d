//! The admin pages' changes: each runs an admin verb of
//! [`crate::admin::VERBS`], the same code the command line and the
//! console run, on smol's blocking pool (the verbs read and write files).

use crate::admin::{Output, Request, Verb, VERBS};
use crate::config::Config;
use std::future::Future;
use std::time::Duration;

/// A verb to run: its name, its arguments as the console would take
/// them, and a password for a verb that asks for one.
pub struct Action {
    pub verb: &'static Verb,
    pub args: Vec<String>,
    pub password: String,
    pub keep: bool,
}

impl Action {
    /// The verb named `name` (`["user", "add"]`) with `args`; each of
    /// `split` is cut at white space into several words first (a list of
    /// addresses typed into one field).
    pub fn new(name: &[&str], args: &[&str], split: &[&str]) -> Action {
        let verb = VERBS
            .iter()
            .find(|v| v.name == name)
            .expect("the admin pages name verbs of the table");
        let mut words: Vec<String> = args.iter().map(|a| a.trim().to_string()).collect();
        words.extend(
            split
                .iter()
                .flat_map(|field| field.split_whitespace())
                .map(str::to_string),
        );
        Action {
            verb,
            args: words,
            password: String::new(),
            keep: false,
        }
    }

    pub fn with_password(mut self, password: &str) -> Action {
        self.password = password.to_string();
        self
    }

    pub fn keeping(mut self, keep: bool) -> Action {
        self.keep = keep;
        self
    }

    /// As the log tells it: `user add bob@example.org` (never a password).
    pub fn describe(&self) -> String {
        let mut words = vec![self.verb.name.join(" ")];
        words.extend(self.args.iter().cloned());
        if self.keep {
            words.push("--keep".into());
        }
        words.join(" ")
    }

    /// Runs the verb off the executor thread; its text, or why not.
    pub async fn run(self, config: &Config) -> Result<String, String> {
        let words: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let fits = self.verb.arguments(&words);
        let Some((args, keep)) = fits.filter(|_| words.iter().all(|w| !w.is_empty())) else {
            return Err(format!("Fill in every field ({}).", self.verb.usage()));
        };
        let args: Vec<String> = args.into_iter().map(str::to_string).collect();
        let keep = keep || self.keep;
        let config = config.clone();
        smol::unblock(move || {
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let request = Request {
                args: &words,
                password: self.password,
                keep,
                text: String::new(),
            };
            (self.verb.run)(&config, &request).map(|output| match output {
                Output::Text(text) => text.trim_end().to_string(),
                Output::List(items, none) if items.is_empty() => none.to_string(),
                Output::List(items, _) => items.join("\n"),
            })
        })
        .await
    }
}

/// `work`'s result, or `None` when it takes longer than `limit` (the
/// work itself may go on, on the blocking pool; the page does not wait).
pub async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(work.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn config(dir: &std::path::Path) -> Config {
        Config::load(&Overrides {
            data_dir: Some(dir.to_path_buf()),
            domains: vec!["example.org".into()],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn actions_run_the_verbs() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        smol::block_on(async {
            let add = Action::new(&["user", "add"], &["bob@example.org"], &[]).with_password("pw");
            assert_eq!(add.describe(), "user add bob@example.org");
            assert_eq!(add.run(&c).await.unwrap(), "added bob@example.org");
            let again = Action::new(&["user", "add"], &["bob@example.org"], &[]).with_password("x");
            assert!(again.run(&c).await.unwrap_err().contains("already exists"));
            let forward = Action::new(
                &["user", "forward"],
                &["bob@example.org"],
                &["a@far.test  b@far.test"],
            )
            .keeping(true);
            assert_eq!(
                forward.describe(),
                "user forward bob@example.org a@far.test b@far.test --keep"
            );
            assert_eq!(
                forward.run(&c).await.unwrap(),
                "bob@example.org forwards to a@far.test, b@far.test and keeps a copy"
            );
            let list = Action::new(&["user", "list"], &[], &[]);
            assert_eq!(list.run(&c).await.unwrap(), "bob@example.org (admin)");
            // Missing fields are refused before anything runs.
            let empty = Action::new(&["user", "quota"], &["bob@example.org", " "], &[]);
            assert_eq!(
                empty.run(&c).await.unwrap_err(),
                "Fill in every field (usage: user quota NAME SIZE)."
            );
            let none = Action::new(&["alias", "add"], &["club"], &["  "]);
            assert!(none
                .run(&c)
                .await
                .unwrap_err()
                .contains("(usage: alias add"));
            assert_eq!(
                Action::new(&["alias", "list"], &[], &[])
                    .run(&c)
                    .await
                    .unwrap(),
                "no aliases"
            );
        });
    }

    #[test]
    fn slow_work_is_not_waited_for() {
        smol::block_on(async {
            let quick = within(Duration::from_secs(5), async { 7 }).await;
            assert_eq!(quick, Some(7));
            let slow = within(
                Duration::from_millis(10),
                smol::Timer::after(Duration::from_secs(60)),
            )
            .await;
            assert!(slow.is_none());
        });
    }
}
