use super::*;
use crate::store::maildir::{create_mailbox, scan_mailbox, Incoming, NameMaker};
use crate::store::memory::Memory;
use std::path::PathBuf;
use std::sync::Arc;

const DATA: &str = "/data";

fn mailbox() -> PathBuf {
    maildir::mailbox_dir(Path::new(DATA), "a", "test")
}

/// A moment the directories have settled by.
fn later() -> SystemTime {
    SystemTime::now() + SETTLED + Duration::from_secs(1)
}

fn deliver(disk: &Arc<dyn Disk>, names: &NameMaker, text: &str) {
    let mut message = Incoming::create(disk, Path::new(DATA), names.next()).unwrap();
    message.write(text.as_bytes()).unwrap();
    message.deliver(&[mailbox()]).unwrap();
    message.discard();
}

fn filled(count: usize) -> (Arc<Memory>, Arc<dyn Disk>, NameMaker) {
    let memory = Arc::new(Memory::new());
    let disk: Arc<dyn Disk> = memory.clone();
    maildir::clear_spool(&*disk, Path::new(DATA)).unwrap();
    create_mailbox(&*disk, &mailbox()).unwrap();
    let names = NameMaker::new("host.example");
    for i in 0..count {
        deliver(&disk, &names, &format!("Subject: {i}\r\n\r\nbody\r\n"));
    }
    (memory, disk, names)
}

/// Lists through the index and checks the listing against the directories.
fn list(disk: &dyn Disk) -> Source {
    let (listed, source) = list_mailbox(disk, &mailbox(), later()).unwrap();
    assert_eq!(
        listed,
        scan_mailbox(disk, &mailbox()).unwrap(),
        "{source:?}"
    );
    source
}

#[test]
fn an_unchanged_mailbox_is_read_from_its_index_written_once() {
    let (_, disk, _) = filled(50);
    assert_eq!(list(&*disk), Source::Rebuilt);
    let written = disk.metadata(&mailbox().join(INDEX_FILE)).unwrap();
    for _ in 0..3 {
        assert_eq!(list(&*disk), Source::Index);
    }
    assert_eq!(
        disk.metadata(&mailbox().join(INDEX_FILE)).unwrap(),
        written,
        "an unchanged mailbox's index was written again"
    );
}

#[test]
fn names_are_stored_by_what_they_add_to_the_one_before() {
    let (_, disk, _) = filled(200);
    list(&*disk);
    let index = disk.read(&mailbox().join(INDEX_FILE)).unwrap();
    let names: usize = scan_mailbox(&*disk, &mailbox())
        .unwrap()
        .iter()
        .map(|m| m.name.len())
        .sum();
    assert!(
        index.len() * 2 < names,
        "{} bytes of index for {names} bytes of names",
        index.len()
    );
}

#[test]
fn a_fresh_directory_is_listed_and_not_indexed() {
    let (_, disk, _) = filled(3);
    let (listed, source) = list_mailbox(&*disk, &mailbox(), SystemTime::now()).unwrap();
    assert_eq!(source, Source::Listed);
    assert_eq!(listed.len(), 3);
    assert!(disk.metadata(&mailbox().join(INDEX_FILE)).is_err());
    // Written once settled; then a change within the window is not trusted.
    assert_eq!(list(&*disk), Source::Rebuilt);
    let names = NameMaker::new("other");
    deliver(&disk, &names, "Subject: late\r\n\r\nx\r\n");
    let (listed, source) = list_mailbox(&*disk, &mailbox(), SystemTime::now()).unwrap();
    assert_eq!((listed.len(), source), (4, Source::Listed));
}

#[test]
fn new_mail_is_listed() {
    let (_, disk, names) = filled(5);
    assert_eq!(list(&*disk), Source::Rebuilt);
    deliver(&disk, &names, "Subject: new\r\n\r\nx\r\n");
    assert_eq!(list(&*disk), Source::Rebuilt);
    assert_eq!(list(&*disk), Source::Index);
    assert_eq!(scan_mailbox(&*disk, &mailbox()).unwrap().len(), 6);
}

#[test]
fn a_message_deleted_by_another_session_is_not_listed() {
    let (_, disk, _) = filled(5);
    list(&*disk);
    let listed = scan_mailbox(&*disk, &mailbox()).unwrap();
    maildir::delete_messages(&*disk, &mailbox(), [&*listed[2].name]).unwrap();
    assert_eq!(list(&*disk), Source::Rebuilt);
    let (now, _) = list_mailbox(&*disk, &mailbox(), later()).unwrap();
    assert_eq!(now.len(), 4);
    assert!(!now.contains(&listed[2]));
}

#[test]
fn files_moved_or_added_in_cur_behind_our_back_are_listed() {
    let (_, disk, _) = filled(3);
    list(&*disk);
    // Another program moves one to cur/ with a flag, and adds one there.
    let first = scan_mailbox(&*disk, &mailbox()).unwrap()[0].clone();
    let file = first.name.strip_prefix("new/").unwrap();
    disk.rename(
        &mailbox().join(&*first.name),
        &mailbox().join(format!("cur/{file}:2,S")),
    )
    .unwrap();
    assert_eq!(list(&*disk), Source::Rebuilt);
    let mut added = disk
        .create_new(&mailbox().join("cur/1.M1P1Q1.other:2,"), 0o600)
        .unwrap();
    disk.write(&mut added, b"Subject: other\r\n\r\n").unwrap();
    assert_eq!(list(&*disk), Source::Rebuilt);
    let (listed, _) = list_mailbox(&*disk, &mailbox(), later()).unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(&*listed[0].name, "cur/1.M1P1Q1.other:2,");
    assert_eq!(listed[0].size, 18);
}

#[test]
fn a_damaged_index_is_never_trusted_and_is_rebuilt() {
    let (_, disk, _) = filled(20);
    list(&*disk);
    let path = mailbox().join(INDEX_FILE);
    let good = disk.read(&path).unwrap();
    let mut damages: Vec<Vec<u8>> = (0..good.len())
        .map(|i| {
            let mut bytes = good.clone();
            bytes[i] ^= 0x01;
            bytes
        })
        .collect();
    damages.extend((0..good.len()).map(|cut| good[..cut].to_vec()));
    damages.push([good.as_slice(), b"x"].concat());
    for bytes in damages {
        disk.unlink(&path).unwrap();
        let mut file = disk.create_new(&path, 0o600).unwrap();
        disk.write(&mut file, &bytes).unwrap();
        let source = list(&*disk);
        // A flip that only makes the recorded times differ reads as stale.
        assert_eq!(source, Source::Rebuilt);
        assert_eq!(disk.read(&path).unwrap(), good);
    }
}

/// The index written with the power cut after each number of changes in
/// turn: after the restart the mailbox lists exactly its messages.
#[test]
fn a_power_cut_anywhere_in_writing_the_index_lists_the_right_messages() {
    for with_old_index in [false, true] {
        for cut in 0.. {
            let (memory, disk, names) = filled(5);
            if with_old_index {
                list(&*disk);
                deliver(&disk, &names, "Subject: more\r\n\r\nx\r\n");
            }
            memory.cut_power_after(cut);
            let listed = list_mailbox(&*disk, &mailbox(), later());
            let finished = !memory.power_was_cut();
            memory.crash();
            let expected = scan_mailbox(&*disk, &mailbox()).unwrap();
            assert_eq!(expected.len(), if with_old_index { 6 } else { 5 });
            if let Ok((listed, _)) = listed {
                assert_eq!(listed, expected, "power cut after {cut}");
            }
            list(&*disk);
            assert_eq!(list(&*disk), Source::Index);
            if finished {
                break;
            }
        }
    }
}

#[test]
fn a_missing_mailbox_lists_empty_and_writes_nothing() {
    let memory = Memory::new();
    let (listed, source) = list_mailbox(&memory, Path::new("/none"), later()).unwrap();
    assert!(listed.is_empty());
    assert_eq!(source, Source::Listed);
}

/// A listing indexed late (as a POP3 session ends), after new mail came
/// and a message went: the index is stale, never wrong.
#[test]
fn an_index_written_after_a_change_is_stale() {
    let (_, disk, names) = filled(4);
    let (listed, source, unindexed) = read_or_list(&*disk, &mailbox(), later()).unwrap();
    assert_eq!(source, Source::Rebuilt);
    deliver(&disk, &names, "Subject: meanwhile\r\n\r\nx\r\n");
    maildir::delete_messages(&*disk, &mailbox(), [&*listed[0].name]).unwrap();
    let entries = listed.iter().map(|m| (&*m.name, m.size));
    unindexed
        .unwrap()
        .write(&*disk, &mailbox(), listed.len(), entries)
        .unwrap();
    assert_eq!(list(&*disk), Source::Rebuilt);
    assert_eq!(list(&*disk), Source::Index);
}
