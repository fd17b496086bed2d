//! The address book on the member's page: the entries with a button to
//! delete each, a form to add one, and the whole book as vCards. Changes
//! run the `book` admin verb's steps, as `postbox book NAME ...` does.
//!
//! Form ids and field names (stable, for tests and browsers): `book`
//! (`address`, `name`; button `action` = `add`), each row's
//! `book-del-N` (`address`, `action` = `del`).

use super::admin::view::button_form;
use super::form::Form;
use super::http::Response;
use super::pages::escape_html;
use super::visit::{Pending, Visit};
use crate::spam::book::{self, Entry};
use std::fmt::Write;

/// Where the member's address book is downloaded as vCards.
pub const EXPORT_PATH: &str = "/account/addressbook.vcf";

/// The address book section: `entries` as the file holds them.
pub fn section(visit: &Visit, entries: &[Entry], typed: Option<&Form>) -> String {
    let csrf = visit.csrf_field();
    let shown = book::listed(entries);
    let mut rows = String::new();
    for (i, entry) in shown.iter().enumerate() {
        let delete = button_form(
            &format!("book-del-{i}"),
            "/account/book",
            &csrf,
            &[("address", &entry.address), ("action", "del")],
            "Delete",
        );
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{delete}</td></tr>",
            escape_html(&entry.name),
            escape_html(&entry.address),
        );
    }
    let hidden = entries.len() - shown.len();
    let table = match shown.len() {
        0 => "<p class=\"state\" id=\"book-state\">No entries yet.</p>\n".to_string(),
        n => format!(
            "<p class=\"state\" id=\"book-state\">{n} entries. <a id=\"book-export\" href=\"{EXPORT_PATH}\">Download as vCards</a> (for a mail program's address book).</p>\n<table id=\"book-entries\">\n<tr><th>Name</th><th>Address</th><th></th></tr>\n{rows}</table>\n"
        ),
    };
    let older = match hidden {
        0 => String::new(),
        n => format!("<p class=\"hint\">{n} older correspondents are known by a fingerprint only and not shown.</p>\n"),
    };
    let (address, name) = match typed {
        Some(form) => (form.text("address"), form.text("name")),
        None => ("", ""),
    };
    format!(
        "<section class=\"card\" id=\"address-book\">\n<h2>Address book</h2>\n<p class=\"hint\">Everyone you write to and who writes to you (mail that is not spam) is added by itself. Mail from strangers to many people at once counts as spam unless you know one of them.</p>\n{table}{older}<form id=\"book\" method=\"post\" action=\"/account/book\">\n{csrf}\n<label for=\"book-address\">Address</label>\n<input id=\"book-address\" name=\"address\" type=\"text\" inputmode=\"email\" value=\"{}\" placeholder=\"name@example.com\" required>\n<label for=\"book-name\">Name (optional)</label>\n<input id=\"book-name\" name=\"name\" type=\"text\" maxlength=\"{}\" value=\"{}\">\n<button type=\"submit\" id=\"book-add\" name=\"action\" value=\"add\">Add</button>\n</form>\n</section>\n",
        escape_html(address),
        crate::limits::ADDRESS_BOOK_NAME,
        escape_html(name),
    )
}

/// `POST /account/book`: `action` = `add` (`address`, `name`) or `del`
/// (`address`).
pub fn change<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let Some(member) = visit.member() else {
            return Response::see_other("/login");
        };
        let form = &visit.form;
        let action = match form.text("action") {
            "add" => "add",
            "del" => "del",
            _ => {
                let message = "Choose add or delete.".to_string();
                return super::account::failed(visit, member, 400, "book", message).await;
            }
        };
        let config = visit.site.config.clone();
        let account = member.as_str().to_string();
        let (address, name) = (
            form.text("address").trim().to_string(),
            form.text("name").to_string(),
        );
        let result = smol::unblock(move || {
            let (_, mailbox) = crate::admin::member_mailbox(&config, &account)?;
            book::edit(&config.data_dir, &mailbox, |entries| match action {
                "add" => {
                    book::add(entries, &address, &name).map(|a| format!("address book: added {a}"))
                }
                _ => book::remove(entries, &address)
                    .map(|_| format!("address book: deleted {address}")),
            })
        })
        .await;
        let stop = action == "del";
        super::account::settled(visit, member, "book", stop, result).await
    })
}

/// `GET /account/addressbook.vcf`: the member's book as vCards.
pub fn export<'a>(visit: &'a Visit<'a>) -> Pending<'a> {
    Box::pin(async move {
        let Some(member) = visit.member() else {
            return Response::see_other("/login");
        };
        let config = visit.site.config.clone();
        let account = member.as_str().to_string();
        let cards = smol::unblock(move || {
            let (_, mailbox) = crate::admin::member_mailbox(&config, &account)?;
            crate::admin::book::vcards(&mailbox)
        })
        .await;
        match cards {
            Ok(cards) => {
                let mut response = Response::new(200, "text/vcard; charset=utf-8", cards);
                response.fields.push((
                    "Content-Disposition",
                    "attachment; filename=\"addressbook.vcf\"".into(),
                ));
                response
            }
            Err(why) => {
                log::error!("web {}: cannot export the address book: {why}", visit.who());
                super::account::failed(visit, member, 500, "book", why).await
            }
        }
    })
}
