//! The durable-write primitive on a real filesystem: a bare file name
//! (relative to the working directory), and several writers of one file
//! in one process.

use postbox::store::disk::Fs;
use postbox::store::durable::replace_file;
use std::path::Path;

#[test]
fn replace_file_with_a_bare_name_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    // The only test in this binary that depends on the working directory.
    std::env::set_current_dir(dir.path()).unwrap();
    replace_file(&Fs, Path::new("users"), b"one").unwrap();
    replace_file(&Fs, Path::new("users"), b"two").unwrap();
    assert_eq!(std::fs::read(dir.path().join("users")).unwrap(), b"two");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn concurrent_writers_of_one_file_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("record");
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..20u8 {
                    let content = vec![w; 1000 + usize::from(i)];
                    replace_file(&Fs, &path, &content).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("a writer failed");
    }
    let last = std::fs::read(&path).unwrap();
    assert!(last.iter().all(|&b| b == last[0]), "content mixed");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
