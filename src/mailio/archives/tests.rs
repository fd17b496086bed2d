use super::*;

#[test]
fn names_sort_by_age_and_read_back() {
    assert_eq!(name_at(0), "postbox-19700101-000000.tar");
    let t = 1_796_280_301; // 2026-12-03 06:45:01 UTC
    assert_eq!(name_at(t), "postbox-20261203-064501.tar");
    assert_eq!(made_at(&name_at(t)), Some(t));
    assert!(name_at(t) < name_at(t + 1));
    assert!(is_archive("postbox-20261203-064501.tar"));
    for other in [
        "postbox-20261203-064501.tar.partial",
        "postbox-2026120-064501.tar",
        "notes.txt",
        "postbox-20261203x064501.tar",
    ] {
        assert!(!is_archive(other), "{other}");
    }
}

/// A data directory with a user's message in it.
fn data_dir(root: &Path) -> PathBuf {
    let data = root.join("data");
    let mailbox = data.join("mail/localhost/alice/new");
    fs::create_dir_all(&mailbox).unwrap();
    fs::write(mailbox.join("1.M1P1.host,S=7"), "Hello\r\n").unwrap();
    data
}

#[test]
fn keeps_the_last_n_and_restores_the_newest_or_a_chosen_one() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let stick = root.path().join("stick");
    fs::create_dir(&stick).unwrap();
    fs::write(stick.join("holiday.jpg"), "not ours").unwrap();
    let t = 1_796_280_301;
    for i in 0..5 {
        let (name, summary) = back_up_into(&stick, 3, t + i * 3600, (&data, None, "box")).unwrap();
        assert_eq!(name, name_at(t + i * 3600));
        assert!(summary.files >= 1);
    }
    let kept = list(&stick).unwrap();
    assert_eq!(
        kept,
        [
            name_at(t + 2 * 3600),
            name_at(t + 3 * 3600),
            name_at(t + 4 * 3600)
        ]
    );
    assert!(
        stick.join("holiday.jpg").exists(),
        "only archives are pruned"
    );
    assert!(!due(&stick, 86400, t + 5 * 3600).unwrap());
    assert!(due(&stick, 86400, t + 4 * 3600 + 86400).unwrap());
    assert!(
        due(&root.path().join("data"), 86400, t).unwrap(),
        "none yet"
    );

    assert_eq!(
        choose(&stick, None).unwrap(),
        stick.join(name_at(t + 4 * 3600))
    );
    let older = name_at(t + 2 * 3600);
    assert_eq!(choose(&stick, Some(&older)).unwrap(), stick.join(&older));
    let why = choose(&stick, Some("postbox-20000101-000000.tar")).unwrap_err();
    assert!(why.contains("no archive"), "{why}");

    // Into an empty directory (as a fresh card's): the newest.
    let fresh = root.path().join("fresh");
    fs::create_dir(&fresh).unwrap();
    restore_into(&choose(&stick, None).unwrap(), &fresh, None).unwrap();
    let message = fresh.join("mail/localhost/alice/new/1.M1P1.host,S=7");
    assert_eq!(fs::read_to_string(message).unwrap(), "Hello\r\n");
    let why = restore_into(&choose(&stick, None).unwrap(), &fresh, None).unwrap_err();
    assert!(why.contains("not empty"), "{why}");

    let empty = root.path().join("empty-stick");
    fs::create_dir(&empty).unwrap();
    let why = choose(&empty, None).unwrap_err();
    assert!(why.contains("no backup"), "{why}");
}
