//! What leaves the cluster: every text bound for the model passes through a [`Redaction`]
//! first. IP addresses are always replaced — IPv4 (RFC 791 dotted quads, also with a port or
//! prefix length, and the dashed form in EC2 host names such as `ip-10-0-1-23`) and IPv6
//! (RFC 4291 text forms, also bracketed or with a prefix length) — by `[address-N]`; pod
//! names (the values of `pod`-like labels the alerts carry) are hashed to `pod-<8 hex>` or
//! dropped to `[pod]`, as `--redact.pod-names` says. The same redaction restores its
//! placeholders in the model's reply, so the people reading Slack see the real names.

use std::{collections::BTreeMap, net::Ipv6Addr, sync::OnceLock};

use regex::Regex;
use sha2::{Digest, Sha256};

/// Labels whose values are pod names.
pub const POD_LABELS: [&str; 4] = ["pod", "pod_name", "remote_pod", "exported_pod"];

/// What happens to pod names before the model sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PodNames {
    /// Sent as they are.
    Keep,
    /// Replaced by `pod-` and 8 hex digits of SHA-256 over a per-process key and the name:
    /// stable within the process, unlinkable outside it.
    Hash,
    /// Replaced by `[pod]`.
    Drop,
}

/// One redaction: the pod names to hide and the placeholders handed out, to restore them.
#[derive(Debug, Clone)]
pub struct Redaction {
    mode: PodNames,
    key: [u8; 16],
    /// Pod names, longest first (so `api-7f9c` is replaced before `api`).
    pods: Vec<String>,
    /// Placeholder → original.
    handed_out: BTreeMap<String, String>,
}

impl Redaction {
    /// A redaction hiding `pods` (pod names) as `mode` says, hashing with `key`.
    pub fn new<'a>(mode: PodNames, key: [u8; 16], pods: impl IntoIterator<Item = &'a str>) -> Self {
        let mut pods: Vec<String> =
            pods.into_iter().filter(|p| !p.is_empty()).map(str::to_owned).collect();
        pods.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        pods.dedup();
        Self { mode, key, pods, handed_out: BTreeMap::new() }
    }

    /// Whether `label` holds pod names.
    pub fn is_pod_label(label: &str) -> bool {
        POD_LABELS.contains(&label)
    }

    fn pod_placeholder(&self, name: &str) -> String {
        match self.mode {
            PodNames::Keep => name.to_owned(),
            PodNames::Drop => "[pod]".to_owned(),
            PodNames::Hash => {
                let mut h = Sha256::new();
                h.update(self.key);
                h.update(name.as_bytes());
                let d = h.finalize();
                format!("pod-{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
            }
        }
    }

    fn address_placeholder(&mut self, address: &str) -> String {
        if let Some((p, _)) = self.handed_out.iter().find(|(_, a)| *a == address) {
            return p.clone();
        }
        let n = self.handed_out.keys().filter(|k| k.starts_with("[address-")).count() + 1;
        let p = format!("[address-{n}]");
        self.handed_out.insert(p.clone(), address.to_owned());
        p
    }

    /// `text` with every pod name and IP address replaced.
    pub fn apply(&mut self, text: &str) -> String {
        let mut out = text.to_owned();
        if self.mode != PodNames::Keep {
            for pod in self.pods.clone() {
                if out.contains(&pod) {
                    let p = self.pod_placeholder(&pod);
                    if self.mode == PodNames::Hash {
                        self.handed_out.insert(p.clone(), pod.clone());
                    }
                    out = out.replace(&pod, &p);
                }
            }
        }
        // Each pattern consumes the character after a match, so neighbours (`1.1.1.1 2.2.2.2`)
        // take another pass, and an address glued to another (`10.0.0.1..::1`) shows only
        // once its neighbour is replaced: passes repeat until one changes nothing (each
        // replaces at least one address, so they end).
        let p = patterns();
        let passes: [(&Regex, AddressTest); 3] = [
            (&p.v6, |m| m.parse::<Ipv6Addr>().is_ok()),
            (&p.v4, |m| octets(m, '.')),
            (&p.dashed, |m| octets(m, '-')),
        ];
        loop {
            let before = out.clone();
            for (pattern, is_address) in passes {
                out = self.replace(&out, pattern, is_address);
            }
            if out == before {
                break;
            }
        }
        out
    }

    /// `text` (the model's reply) with the placeholders this redaction handed out turned
    /// back into what they stand for.
    pub fn restore(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (placeholder, original) in &self.handed_out {
            out = out.replace(placeholder, original);
        }
        out
    }

    /// `text` with each match of `pattern`'s group 1 that `is_address` accepts replaced.
    fn replace(
        &mut self,
        text: &str,
        pattern: &Regex,
        is_address: impl Fn(&str) -> bool,
    ) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in pattern.captures_iter(text) {
            let Some(m) = caps.get(1) else { continue };
            let Some((start, end)) = trimmed_address(m.as_str(), &is_address) else { continue };
            out.push_str(&text[last..m.start() + start]);
            out.push_str(&self.address_placeholder(&m.as_str()[start..end]));
            last = m.start() + end;
        }
        out.push_str(&text[last..]);
        out
    }
}

/// The byte range of the address in `candidate`: the whole, or without leading and trailing
/// dots and colons that are punctuation (`.::1` → `::1`, `fe80::1:` → `fe80::1`).
fn trimmed_address(candidate: &str, is_address: impl Fn(&str) -> bool) -> Option<(usize, usize)> {
    let lead = candidate.len() - candidate.trim_start_matches(['.', ':']).len();
    for start in 0..=lead {
        let mut end = candidate.len();
        while end > start {
            if is_address(&candidate[start..end]) {
                return Some((start, end));
            }
            if !candidate[..end].ends_with(['.', ':']) {
                break;
            }
            end -= 1;
        }
    }
    None
}

/// Whether a match is an address.
type AddressTest = fn(&str) -> bool;

struct Patterns {
    v6: Regex,
    v4: Regex,
    dashed: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| Patterns {
        // A run of hex digits, colons and dots with at least two colons (RFC 4291 section
        // 2.2 text forms, the embedded-IPv4 form included).
        v6: Regex::new(r"(?:^|[^0-9A-Fa-f:.])([0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)")
            .expect("IPv6 pattern"),
        // Four decimal octets, not inside a longer dotted number.
        v4: Regex::new(
            r"(?:^|^\.|[^0-9.]|[^0-9]\.)([0-9]{1,3}(?:\.[0-9]{1,3}){3})(?:$|[^0-9.]|\.[^0-9]|\.$)",
        )
        .expect("IPv4 pattern"),
        // The dashed form of EC2 and GKE host names (`ip-10-0-1-23`).
        dashed: Regex::new(
            r"(?:^|[^0-9-]|[A-Za-z_]-)([0-9]{1,3}(?:-[0-9]{1,3}){3})(?:$|[^0-9-]|-[^0-9])",
        )
        .expect("dashed IPv4 pattern"),
    })
}

/// Whether `s` is four decimal octets (each at most 255, leading zeros allowed) joined by
/// `sep`.
fn octets(s: &str, sep: char) -> bool {
    let parts: Vec<&str> = s.split(sep).collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.parse::<u16>().is_ok_and(|v| v <= 255))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Redaction::new(PodNames::Hash, [7; 16], ["checkout-7d9f8-x2x4z"]).apply(text)
    }

    #[test]
    fn addresses_in_every_written_form_are_replaced() {
        for (text, want) in [
            ("to 10.0.0.5 now", "to [address-1] now"),
            ("instance 10.0.0.5:9100.", "instance [address-1]:9100."),
            ("node ip-10-0-1-23.ec2.internal", "node ip-[address-1].ec2.internal"),
            ("[2001:db8::1]:443", "[[address-1]]:443"),
            ("2001:db8::/32 and ::ffff:198.51.100.7", "[address-1]/32 and [address-2]"),
            ("from 2001:db8::1.", "from [address-1]."),
            ("010.000.000.001 and 1.2.3.4.5", "[address-1] and 1.2.3.4.5"),
            // Neighbours take a second pass, so their numbers follow the passes.
            ("1.1.1.1 1.1.1.2,1.1.1.3", "[address-1] [address-3],[address-2]"),
            ("10.0.0.0/8", "[address-1]/8"),
            ("fe80::1%eth0", "[address-1]%eth0"),
            (
                "at 12:30:05 on 2026-12-03, deadbeef cafe",
                "at 12:30:05 on 2026-12-03, deadbeef cafe",
            ),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn pod_names_are_hashed_or_dropped_and_restored() {
        let mut r = Redaction::new(PodNames::Hash, [7; 16], ["checkout-7d9f8-x2x4z"]);
        let out = r.apply("pod checkout-7d9f8-x2x4z on 203.0.113.9");
        assert!(!out.contains("checkout-7d9f8") && out.contains("pod-"), "{out}");
        assert!(!out.contains("203.0.113.9"), "{out}");
        assert_eq!(r.restore(&out), "pod checkout-7d9f8-x2x4z on 203.0.113.9");
        let mut d = Redaction::new(PodNames::Drop, [7; 16], ["checkout-7d9f8-x2x4z"]);
        assert_eq!(d.apply("pod checkout-7d9f8-x2x4z"), "pod [pod]");
        let mut k = Redaction::new(PodNames::Keep, [7; 16], ["checkout-7d9f8-x2x4z"]);
        assert_eq!(k.apply("pod checkout-7d9f8-x2x4z"), "pod checkout-7d9f8-x2x4z");
    }
}
