use super::*;

/// One minute's save, as the server does it.
fn save_all(books: &AddressBooks, data_dir: &Path) {
    let (saved, result) = save(data_dir, books.take_changes());
    result.unwrap();
    books.saved(saved);
}

fn load(books: &AddressBooks, mailbox: &Path) {
    smol::block_on(books.load([mailbox]));
}

/// A data directory with a mailbox folder.
fn mailbox() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mailbox = dir.path().join("alice");
    std::fs::create_dir(&mailbox).unwrap();
    (dir, mailbox)
}

fn shown(mailbox: &Path) -> Vec<(String, String, bool)> {
    listed(&read(mailbox).unwrap())
        .into_iter()
        .map(|e| (e.address.clone(), e.name.clone(), e.added))
        .collect()
}

#[test]
fn learns_names_saves_and_forgets_the_oldest() {
    let (dir, mailbox) = mailbox();
    let books = AddressBooks::default();
    load(&books, &mailbox);
    assert!(!books.knows(&mailbox, "bob@example.test"));
    books.learn(
        &mailbox,
        [("Bob@Example.TEST.", "Bob  Smith"), ("not-an-address", "x")],
    );
    assert!(books.knows(&mailbox, "bob@example.test"));
    save_all(&books, dir.path());
    assert!(books.take_changes().is_empty(), "nothing changed");
    assert_eq!(
        shown(&mailbox),
        [("Bob@example.test".into(), "Bob Smith".into(), false)]
    );
    let fresh = AddressBooks::default();
    load(&fresh, &mailbox);
    assert!(fresh.knows(&mailbox, "BOB@example.test"));

    let many: Vec<String> = (0..=ADDRESS_BOOK_ENTRIES)
        .map(|i| format!("u{i}@example.test"))
        .collect();
    for chunk in many.chunks(ADDRESS_BOOK_UNSAVED) {
        books.learn(&mailbox, chunk.iter().map(|a| (a.as_str(), "")));
        save_all(&books, dir.path());
    }
    assert!(
        !books.knows(&mailbox, "bob@example.test"),
        "oldest forgotten"
    );
    assert!(books.knows(&mailbox, "u1@example.test"));
    assert!(books.knows(&mailbox, &many[ADDRESS_BOOK_ENTRIES]));
    assert_eq!(read(&mailbox).unwrap().len(), ADDRESS_BOOK_ENTRIES);
}

#[test]
fn a_version_1_book_still_reads() {
    let (dir, mailbox) = mailbox();
    let hashes = vec![hash("old@example.test"), hash("older@example.test")];
    record::save(
        &crate::store::disk::Fs,
        &path(&mailbox),
        KIND,
        VERSION_HASHES,
        &hashes,
    )
    .unwrap();
    let books = AddressBooks::default();
    load(&books, &mailbox);
    assert!(books.knows(&mailbox, "old@example.test"));
    assert!(shown(&mailbox).is_empty(), "nothing to show of hashes");
    // Learning one fills in its address; saving writes version 2.
    books.learn(&mailbox, [("old@example.test", "Old Friend")]);
    save_all(&books, dir.path());
    assert_eq!(
        shown(&mailbox),
        [("old@example.test".into(), "Old Friend".into(), false)]
    );
    let bytes = std::fs::read(path(&mailbox)).unwrap();
    assert_eq!(bytes[4..6], VERSION.to_le_bytes());
    let entries = read(&mailbox).unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().any(|e| e.hash == hash("older@example.test")));
    // A hash-only entry can be deleted by its address.
    edit(dir.path(), &mailbox, |e| remove(e, "Older@Example.test")).unwrap();
    assert_eq!(read(&mailbox).unwrap().len(), 1);
}

#[test]
fn edits_to_the_file_count_at_the_next_load() {
    let (dir, mailbox) = mailbox();
    let books = AddressBooks::default();
    books.learn(&mailbox, [("bob@example.test", "Bob")]);
    save_all(&books, dir.path());
    load(&books, &mailbox);
    assert!(books.knows(&mailbox, "bob@example.test"));
    edit(dir.path(), &mailbox, |e| {
        remove(e, "bob@example.test")?;
        add(e, "carol@example.test", "Carol, C.")
    })
    .unwrap();
    load(&books, &mailbox);
    assert!(
        !books.knows(&mailbox, "bob@example.test"),
        "deletion unseen"
    );
    assert!(
        books.knows(&mailbox, "carol@example.test"),
        "addition unseen"
    );
    // The server's next save keeps the edit.
    books.learn(&mailbox, [("dave@example.test", "")]);
    save_all(&books, dir.path());
    assert_eq!(
        shown(&mailbox),
        [
            ("carol@example.test".into(), "Carol, C.".into(), true),
            ("dave@example.test".into(), String::new(), false),
        ]
    );
}

#[test]
fn the_members_entries_are_theirs() {
    let (dir, mailbox) = mailbox();
    edit(dir.path(), &mailbox, |e| {
        add(e, "bob@example.test", "Bobby")
    })
    .unwrap();
    let books = AddressBooks::default();
    books.learn(&mailbox, [("bob@example.test", "Robert B.")]);
    let many: Vec<String> = (0..ADDRESS_BOOK_UNSAVED)
        .map(|i| format!("u{i}@example.test"))
        .collect();
    for _ in 0..ADDRESS_BOOK_ENTRIES / ADDRESS_BOOK_UNSAVED + 1 {
        books.learn(&mailbox, many.iter().map(|a| (a.as_str(), "")));
        save_all(&books, dir.path());
    }
    let entries = read(&mailbox).unwrap();
    let bob = entries.iter().find(|e| e.address == "bob@example.test");
    assert_eq!(bob.map(|e| e.name.as_str()), Some("Bobby"), "name kept");
    for bad in ["nobody", "a b@example.test", "@example.test"] {
        let why = edit(dir.path(), &mailbox, |e| add(e, bad, "")).unwrap_err();
        assert!(why.contains("not an address"), "{why}");
    }
    let why = edit(dir.path(), &mailbox, |e| add(e, "x@example.test", "a\nb")).unwrap_err();
    assert!(why.contains("one line"), "{why}");
    let why = edit(dir.path(), &mailbox, |e| remove(e, "zed@example.test")).unwrap_err();
    assert!(why.contains("not in the address book"), "{why}");
}

#[test]
fn learning_while_a_save_is_under_way_is_kept() {
    let (dir, mailbox) = mailbox();
    let books = AddressBooks::default();
    load(&books, &mailbox);
    books.learn(&mailbox, [("first@example.test", "")]);
    let changes = books.take_changes();
    // Learned after the changes were taken, before they are on flash.
    books.learn(&mailbox, [("second@example.test", "")]);
    let (saved, result) = save(dir.path(), changes);
    result.unwrap();
    books.saved(saved);
    assert!(books.knows(&mailbox, "second@example.test"));
    save_all(&books, dir.path());
    let fresh = AddressBooks::default();
    load(&fresh, &mailbox);
    assert!(fresh.knows(&mailbox, "first@example.test"), "lost");
    assert!(fresh.knows(&mailbox, "second@example.test"));
}

#[test]
fn unused_books_leave_memory() {
    let (dir, mailbox) = mailbox();
    edit(dir.path(), &mailbox, |e| add(e, "bob@example.test", "")).unwrap();
    let books = AddressBooks::default();
    load(&books, &mailbox);
    save_all(&books, dir.path());
    assert_eq!(books.open.borrow().len(), 1, "in use: kept");
    save_all(&books, dir.path());
    assert!(books.open.borrow().is_empty(), "unused for a minute");
}

#[test]
fn a_failed_save_is_tried_again() {
    let (_dir, mailbox) = mailbox();
    let books = AddressBooks::default();
    books.learn(&mailbox, [("x@example.test", "")]);
    // The save never reports back (say, cancelled at shutdown).
    drop(books.take_changes());
    assert_eq!(books.take_changes().len(), 1, "change forgotten");
}

#[test]
fn a_deleted_member_is_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let mailbox = dir.path().join("gone");
    let books = AddressBooks::default();
    books.learn(&mailbox, [("x@example.test", "")]);
    save_all(&books, dir.path());
    assert!(!mailbox.exists());
    assert!(books.take_changes().is_empty());
}

#[test]
fn encoded_names_are_decoded() {
    assert_eq!(clean_name("=?UTF-8?B?SsO8cmdlbg==?= Smith"), "Jürgen Smith");
    assert_eq!(
        clean_name("=?iso-8859-1?q?J=FCrgen?= =?utf-8?q?_M=C3=BCller?="),
        "Jürgen Müller"
    );
    assert_eq!(
        clean_name("=?x-unknown?q?abc?= =?utf-8?q?broken"),
        "=?x-unknown?q?abc?= =?utf-8?q?broken"
    );
    assert_eq!(clean_name(" a\tb\u{7}c "), "a b c");
    assert_eq!(
        clean_name(&"é".repeat(100)).chars().count(),
        ADDRESS_BOOK_NAME
    );
}
