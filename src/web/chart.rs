//! The admin page's chart of messages per day: an SVG image made on the
//! server from the counters, so the page needs no script and nothing from
//! elsewhere. Colours are presentation attributes, not styles, which the
//! Content-Security-Policy would refuse.

use super::pages::escape_html;
use crate::ops::clock::civil_from_days;
use crate::ops::stats::Day;
use std::fmt::Write;

const WIDTH: u64 = 640;
const HEIGHT: u64 = 240;
const LEFT: u64 = 48;
const RIGHT: u64 = 8;
const TOP: u64 = 28;
const BOTTOM: u64 = 24;
/// Every this many days (counting back from the newest) has a date label.
const LABEL_EVERY: usize = 7;

/// `MM-DD` of a day number.
fn month_day(day: u64) -> String {
    let (_, month, dom) = civil_from_days(day as i64);
    format!("{month:02}-{dom:02}")
}

/// `YYYY-MM-DD` of a day number.
fn date(day: u64) -> String {
    let (year, month, dom) = civil_from_days(day as i64);
    format!("{year:04}-{month:02}-{dom:02}")
}

/// The smallest of 1, 2, 3, 4, 5, 6, 8 × 10ⁿ at least `n` (at least 1):
/// the top of the scale, so its label is a round number.
fn scale_top(n: u64) -> u64 {
    let mut unit = 1u64;
    loop {
        for step in [1, 2, 3, 4, 5, 6, 8] {
            match unit.checked_mul(step) {
                Some(top) if top >= n => return top,
                Some(_) => {}
                None => return n,
            }
        }
        unit = match unit.checked_mul(10) {
            Some(u) => u,
            None => return n,
        };
    }
}

/// A bar chart of messages received per day, one bar per entry of `days`
/// (oldest first), titled `title` (text). Each bar's `<title>` gives the
/// day's figures, which browsers show on hover.
pub fn messages_per_day(title: &str, days: &[Day]) -> String {
    let top = scale_top(days.iter().map(|d| d.received).max().unwrap_or(0));
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = plot_width as f64 / days.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let base = TOP + plot_height;
    let mut svg = String::new();
    let title = escape_html(title);
    let _ = write!(
        svg,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\" \
         role=\"img\" aria-label=\"{title}\">\n\
         <title>{title}</title>\n\
         <rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>\n\
         <text x=\"{LEFT}\" y=\"16\" font-size=\"13\" fill=\"#222222\">{title}</text>\n"
    );
    // The scale: its top, zero and (when a whole number) its middle,
    // each with a line across.
    let middle = top
        .is_multiple_of(2)
        .then_some((top / 2, TOP + plot_height / 2));
    for (value, y) in [(top, TOP), (0, base)].into_iter().chain(middle) {
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#dddddd\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555555\">{value}</text>\n",
            WIDTH - RIGHT,
            LEFT - 4,
            y + 4
        );
    }
    for (i, day) in days.iter().enumerate() {
        let height = (day.received as f64 * plot_height as f64 / top as f64).round();
        let x = LEFT as f64 + i as f64 * slot + (slot - bar) / 2.0;
        let y = base as f64 - height;
        let tip = escape_html(&format!(
            "{}: {} received, {} delivered here, {} sent on",
            date(day.day),
            day.received,
            day.delivered,
            day.sent
        ));
        let _ = writeln!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{height:.1}\" \
             fill=\"#3b6ea8\"><title>{tip}</title></rect>"
        );
        if (days.len() - 1 - i).is_multiple_of(LABEL_EVERY) {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555555\">{}</text>",
                x + bar / 2.0,
                base + 16,
                month_day(day.day)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    fn thirty_days() -> Vec<Day> {
        (0..30)
            .map(|i| Day {
                day: 20_400 + i,
                received: i * 3 % 17,
                delivered: i,
                sent: 1,
            })
            .collect()
    }

    /// What Python's XML parser reads in `svg`: the root's tag, the
    /// number of bars, the title's text and the bars' tips.
    fn parsed_by_python(svg: &str) -> String {
        let script = "import sys, xml.dom.minidom as m\n\
            d = m.parseString(sys.stdin.buffer.read())\n\
            r = d.documentElement\n\
            bars = [e for e in r.getElementsByTagName('rect') if e.getAttribute('class') == 'bar']\n\
            print(r.tagName, r.getAttribute('xmlns'))\n\
            print(len(bars))\n\
            print(r.getElementsByTagName('title')[0].firstChild.data)\n\
            print(bars[-1].getElementsByTagName('title')[0].firstChild.data)\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(svg.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn chart_is_well_formed_svg_with_a_bar_a_day() {
        let title = "Messages <per> day & \"night\" at O'Hare";
        let svg = messages_per_day(title, &thirty_days());
        assert_eq!(
            parsed_by_python(&svg),
            format!(
                "svg http://www.w3.org/2000/svg\n30\n{title}\n2025-12-07: 2 received, 29 delivered here, 1 sent on\n"
            )
        );
        assert!(!svg.contains("<script") && !svg.contains("style"));
        // Nothing from elsewhere: the namespace is the only address.
        assert!(!svg
            .replace("http://www.w3.org/2000/svg", "")
            .contains("http"));
    }

    #[test]
    fn bars_scale_to_a_round_top() {
        assert_eq!(
            [0, 1, 2, 3, 6, 11, 20, 21, 999, 1001].map(scale_top),
            [1, 1, 2, 3, 6, 20, 20, 30, 1000, 2000]
        );
        assert_eq!(scale_top(u64::MAX), u64::MAX);
        let mut days = thirty_days();
        days[4].received = 40;
        days[5].received = 33;
        let svg = messages_per_day("t", &days);
        // The tallest bar reaches the top of the scale (40), the others
        // in proportion.
        let plot = (HEIGHT - TOP - BOTTOM) as f64;
        assert!(svg.contains(&format!("height=\"{plot:.1}\"")));
        assert!(svg.contains(&format!("height=\"{:.1}\"", (33.0 * plot / 40.0).round())));
        assert!(svg.contains(">40</text>") && svg.contains(">20</text>"));
        // An empty month is a flat chart, not a division by zero.
        let quiet: Vec<Day> = days.iter().map(|d| Day { received: 0, ..*d }).collect();
        let svg = messages_per_day("t", &quiet);
        assert!(svg.contains(">1</text>") && !svg.contains("NaN"));
        // No half-way label where it would not be a whole number.
        assert_eq!(svg.matches("text-anchor=\"end\"").count(), 2);
        assert_eq!(parsed_by_python(&svg).lines().nth(1), Some("30"));
    }

    #[test]
    fn every_seventh_day_back_from_today_is_labelled() {
        let svg = messages_per_day("t", &thirty_days());
        let labels: Vec<&str> = svg
            .lines()
            .filter(|l| l.contains("text-anchor=\"middle\""))
            .map(|l| &l[l.find('>').unwrap() + 1..l.rfind('<').unwrap()])
            .collect();
        assert_eq!(labels, ["11-09", "11-16", "11-23", "11-30", "12-07"]);
    }
}
