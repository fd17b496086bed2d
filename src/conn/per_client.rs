//! Tables kept per client: who counts as one client, and how a full
//! table makes room.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

/// Who counts as one client for per-address limits: an IPv4 address, or an
/// IPv6 /64 (one subscriber's prefix; a host there can pick any address).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Makes room in a full table: drops the least recently used eighth of
/// the entries `last_used` may give up (`None`: in use, kept), so a flood
/// of new keys pushes out only the oldest, never everyone's state at once.
pub fn evict_least_recent<K: Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    last_used: impl Fn(&V) -> Option<Instant>,
) {
    let mut times: Vec<Instant> = map.values().filter_map(&last_used).collect();
    if times.is_empty() {
        return;
    }
    let nth = (times.len() / 8).max(1) - 1;
    let cutoff = *times.select_nth_unstable(nth).1;
    map.retain(|_, v| last_used(v).is_none_or(|t| t > cutoff));
}
