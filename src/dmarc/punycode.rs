//! Punycode (RFC 3492), the encoding direction only: a Unicode label of a
//! domain becomes the `xn--` A-label that DNS and the public suffix table
//! use. Also compiled into the build script, which turns the list's
//! Unicode rules into A-labels.

const BASE: u32 = 36;
const T_MIN: u32 = 1;
const T_MAX: u32 = 26;
const SKEW: u32 = 38;
const DAMP: u32 = 700;
const INITIAL_BIAS: u32 = 72;
const INITIAL_N: u32 = 128;

fn adapt(mut delta: u32, points: u32, first: bool) -> u32 {
    delta /= if first { DAMP } else { 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > ((BASE - T_MIN) * T_MAX) / 2 {
        delta /= BASE - T_MIN;
        k += BASE;
    }
    k + (BASE - T_MIN + 1) * delta / (delta + SKEW)
}

fn digit(d: u32) -> char {
    // 0..25 are a..z, 26..35 are 0..9.
    if d < 26 {
        (b'a' + d as u8) as char
    } else {
        (b'0' + (d - 26) as u8) as char
    }
}

/// The A-label of `label` (`xn--` and its Punycode), or the label itself
/// when it is all ASCII. None if the arithmetic would overflow, which only
/// absurd labels reach.
pub fn to_ascii_label(label: &str) -> Option<String> {
    if label.is_ascii() {
        return Some(label.to_owned());
    }
    let input: Vec<u32> = label.chars().map(u32::from).collect();
    let mut out = String::from("xn--");
    out.extend(label.chars().filter(char::is_ascii));
    let basic = (out.len() - 4) as u32;
    if basic > 0 {
        out.push('-');
    }
    let mut n = INITIAL_N;
    let mut delta: u32 = 0;
    let mut bias = INITIAL_BIAS;
    let mut handled = basic;
    while (handled as usize) < input.len() {
        let m = input.iter().copied().filter(|&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(handled + 1)?)?;
        n = m;
        for &c in &input {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        T_MIN
                    } else if k >= bias + T_MAX {
                        T_MAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::to_ascii_label;

    #[test]
    fn rfc3492_samples_and_known_labels() {
        // RFC 3492 §7.1 (A) Arabic and (L) Japanese samples, lowercased.
        assert_eq!(
            to_ascii_label("\u{0644}\u{064A}\u{0647}\u{0645}\u{0627}\u{0628}\u{062A}\u{0643}\u{0644}\u{0645}\u{0648}\u{0634}\u{0639}\u{0631}\u{0628}\u{064A}\u{061F}").unwrap(),
            "xn--egbpdaj6bu4bxfgehfvwxn"
        );
        assert_eq!(
            to_ascii_label("3\u{5E74}b\u{7D44}\u{91D1}\u{516B}\u{5148}\u{751F}").unwrap(),
            "xn--3b-ww4c5e180e575a65lsy2b"
        );
        assert_eq!(to_ascii_label("公司").unwrap(), "xn--55qx5d");
        assert_eq!(to_ascii_label("食狮").unwrap(), "xn--85x722f");
        assert_eq!(to_ascii_label("bücher").unwrap(), "xn--bcher-kva");
        assert_eq!(to_ascii_label("example").unwrap(), "example");
    }
}
