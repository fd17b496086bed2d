//! The few pieces of the tar format a backup needs (POSIX ustar, with a
//! pax `path=` record for a name longer than ustar holds): 512-byte
//! headers written and read, sans-IO.

pub const BLOCK: usize = 512;

/// A member's header blocks: a pax extended header first when `path` does
/// not fit ustar's name and prefix fields.
pub fn header(path: &str, size: u64, mtime: u64) -> Result<Vec<u8>, String> {
    if size >= 1 << 33 {
        return Err(format!("{path} is larger than a tar member holds (8 GiB)"));
    }
    let mut out = Vec::with_capacity(3 * BLOCK);
    let (prefix, name) = match split_path(path) {
        Some(split) => split,
        None => {
            let record = pax_record("path", path);
            out.extend_from_slice(&ustar_block(
                "././@PaxHeader",
                "",
                record.len() as u64,
                0,
                b'x',
            ));
            out.extend_from_slice(record.as_bytes());
            out.resize(out.len().next_multiple_of(BLOCK), 0);
            // The ustar name is only a fallback for readers without pax.
            let tail = &path[path.len().saturating_sub(99)..];
            let tail = tail
                .trim_start_matches(|c| c != '/')
                .trim_start_matches('/');
            ("", tail)
        }
    };
    out.extend_from_slice(&ustar_block(name, prefix, size, mtime, b'0'));
    Ok(out)
}

/// The end of an archive: two zero blocks.
pub const END: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// Zeros that pad a member of `size` bytes to a whole block.
pub fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// `path` as ustar's (prefix, name), when it fits.
fn split_path(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    path.char_indices()
        .filter(|(_, c)| *c == '/')
        .map(|(at, _)| (&path[..at], &path[at + 1..]))
        .find(|(prefix, name)| prefix.len() <= 155 && name.len() <= 100 && !name.is_empty())
}

/// One `LEN KEY=VALUE\n` record, LEN counting itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3;
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body != len {
        len += 1;
    }
    format!("{len} {key}={value}\n")
}

fn ustar_block(name: &str, prefix: &str, size: u64, mtime: u64, kind: u8) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    let put = |block: &mut [u8; BLOCK], at: usize, bytes: &[u8]| {
        block[at..at + bytes.len()].copy_from_slice(bytes)
    };
    put(&mut block, 0, name.as_bytes());
    put(&mut block, 100, b"0000600\0");
    put(&mut block, 108, b"0000000\0");
    put(&mut block, 116, b"0000000\0");
    put(&mut block, 124, format!("{size:011o}\0").as_bytes());
    put(
        &mut block,
        136,
        format!("{:011o}\0", mtime.min(0o77777777777)).as_bytes(),
    );
    put(&mut block, 148, b"        ");
    block[156] = kind;
    put(&mut block, 257, b"ustar\0");
    put(&mut block, 263, b"00");
    put(&mut block, 345, prefix.as_bytes());
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    put(&mut block, 148, format!("{sum:06o}\0 ").as_bytes());
    block
}

/// What one header block says.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// A zero block: the end of the archive.
    End,
    /// A member: its path (ustar prefix and name), size, time and type.
    Member {
        path: String,
        size: u64,
        mtime: u64,
        kind: u8,
    },
}

/// Reads a header block; an error says what is wrong with it.
pub fn parse(block: &[u8; BLOCK]) -> Result<Header, String> {
    if block.iter().all(|b| *b == 0) {
        return Ok(Header::End);
    }
    let stored = octal(&block[148..156]).ok_or("a header's checksum is unreadable")?;
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    if sum != stored {
        return Err("a header's checksum does not match".into());
    }
    let text = |field: &[u8]| {
        let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
        String::from_utf8_lossy(&field[..end]).into_owned()
    };
    let (name, prefix) = (text(&block[0..100]), text(&block[345..500]));
    let path = match prefix.is_empty() {
        true => name,
        false => format!("{prefix}/{name}"),
    };
    Ok(Header::Member {
        path,
        size: octal(&block[124..136]).ok_or("a header's size is unreadable")?,
        mtime: octal(&block[136..148]).unwrap_or(0),
        kind: block[156],
    })
}

fn octal(field: &[u8]) -> Option<u64> {
    let digits = std::str::from_utf8(field).ok()?;
    let digits = digits.trim_matches(|c: char| c == '\0' || c == ' ');
    u64::from_str_radix(digits, 8).ok()
}

/// The `path` of a pax extended header's records, if it has one.
pub fn pax_path(records: &[u8]) -> Option<String> {
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        let record = rest.get(space + 1..len)?;
        let record = record.strip_suffix(b"\n")?;
        if let Some(value) = record.strip_prefix(b"path=") {
            return String::from_utf8(value.to_vec()).ok();
        }
        rest = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_block(bytes: &[u8]) -> [u8; BLOCK] {
        bytes[..BLOCK].try_into().unwrap()
    }

    #[test]
    fn a_short_path_is_one_ustar_block() {
        let bytes = header("data/users", 42, 7).unwrap();
        assert_eq!(bytes.len(), BLOCK);
        let parsed = parse(&first_block(&bytes)).unwrap();
        let expected = Header::Member {
            path: "data/users".into(),
            size: 42,
            mtime: 7,
            kind: b'0',
        };
        assert_eq!(parsed, expected);
    }

    #[test]
    fn a_long_path_uses_the_prefix_then_pax() {
        let medium = format!(
            "data/mail/example.org/{}/cur/{}",
            "a".repeat(60),
            "b".repeat(90)
        );
        let bytes = header(&medium, 1, 0).unwrap();
        assert_eq!(bytes.len(), BLOCK);
        let Header::Member { path, .. } = parse(&first_block(&bytes)).unwrap() else {
            panic!()
        };
        assert_eq!(path, medium);
        let long = format!("data/{}/{}", "c".repeat(200), "d".repeat(120));
        let bytes = header(&long, 1, 0).unwrap();
        let Header::Member { size, kind, .. } = parse(&first_block(&bytes)).unwrap() else {
            panic!()
        };
        assert_eq!(kind, b'x');
        assert_eq!(pax_path(&bytes[BLOCK..BLOCK + size as usize]), Some(long));
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for n in 0..300 {
            let record = pax_record("path", &"x".repeat(n));
            let (len, _) = record.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), record.len());
        }
    }

    #[test]
    fn a_flipped_header_byte_is_found() {
        let mut block = first_block(&header("data/users", 42, 7).unwrap());
        block[3] ^= 1;
        assert!(parse(&block).is_err());
    }
}
