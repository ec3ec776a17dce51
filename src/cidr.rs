//! The networks a token may be used from: IPv4 and IPv6 CIDRs, parsed strictly and kept
//! normalized.
//!
//! A [`CidrList`] is what the `cidr` claim and the token state carry. Parsing normalizes: host
//! bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`), a bare address is a /32 or /128, duplicates
//! go and the list is sorted (IPv4 first, then by address and prefix), so equal lists are equal
//! values and sign to equal bytes. An empty list restricts nothing. A client address matches a
//! network of its own family; an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is read as the
//! IPv4 address it carries, so a dual-stack listener cannot be used to slip past an IPv4 list.
//!
//! What is not decided here: which address is the client's. The server finds it (its
//! trusted-proxy rule) and asks [`crate::VerifiedToken::allows_from`].

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

/// The most networks one token may name.
pub const MAX_CIDRS: usize = 32;

/// The longest CIDR text read (an IPv6 address with a prefix is at most 43 characters).
const MAX_CIDR_TEXT: usize = 64;

/// One network: an address with its host bits cleared, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a list of networks was refused. The message names the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// An entry is not an address or an address/prefix.
    #[error("{0:?} is not a network: use an address such as 10.1.2.3 or 2001:db8::1, or a CIDR such as 10.0.0.0/8 or 2001:db8::/32")]
    Syntax(String),
    /// The prefix is longer than the address.
    #[error("{text:?} has a prefix longer than {max} bits")]
    Prefix {
        /// The entry.
        text: String,
        /// The longest prefix of its family.
        max: u8,
    },
    /// Too many entries.
    #[error("{0} networks is too many: at most {MAX_CIDRS}")]
    TooMany(usize),
}

impl Cidr {
    /// The network of `addr` with `prefix` bits; `None` when the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => IpAddr::V4(Ipv4Addr::from_bits(mask4(a, prefix))),
            IpAddr::V6(a) if prefix <= 128 => IpAddr::V6(Ipv6Addr::from_bits(mask6(a, prefix))),
            _ => return None,
        };
        Some(Self { addr, prefix })
    }

    /// The network address (host bits clear).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network; an IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask4(ip, self.prefix) == net.to_bits(),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask6(ip, self.prefix) == net.to_bits(),
            _ => false,
        }
    }
}

/// `ip`, with an IPv4-mapped IPv6 address read as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask4(a: Ipv4Addr, prefix: u8) -> u32 {
    a.to_bits() & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask6(a: Ipv6Addr, prefix: u8) -> u128 {
    a.to_bits() & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `address` or `address/prefix`, with no spaces, no zone and a decimal prefix.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || CidrError::Syntax(shorten(text));
        if text.len() > MAX_CIDR_TEXT {
            return Err(syntax());
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| syntax())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let digits = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
                let leading_zero = p.len() > 1 && p.starts_with('0');
                if !digits || leading_zero {
                    return Err(syntax());
                }
                p.parse::<u8>().map_err(|_| syntax())?
            }
        };
        Cidr::new(addr, prefix).ok_or_else(|| CidrError::Prefix {
            text: shorten(text),
            max,
        })
    }
}

fn shorten(text: &str) -> String {
    crate::permissions::shorten(text)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A normalized list of networks (see the module docs); empty restricts nothing. Cheap to
/// clone: the networks are shared, and an `Option<CidrList>` is one pointer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CidrList(Arc<Vec<Cidr>>);

impl Default for CidrList {
    /// The empty list: one shared allocation for the whole process.
    fn default() -> Self {
        static EMPTY: std::sync::OnceLock<Arc<Vec<Cidr>>> = std::sync::OnceLock::new();
        Self(EMPTY.get_or_init(|| Arc::new(Vec::new())).clone())
    }
}

impl CidrList {
    /// The list of `cidrs`, normalized; refused when more than [`MAX_CIDRS`] remain.
    pub fn new(cidrs: impl IntoIterator<Item = Cidr>) -> Result<Self, CidrError> {
        let mut nets: Vec<Cidr> = cidrs.into_iter().collect();
        nets.sort_unstable();
        nets.dedup();
        if nets.len() > MAX_CIDRS {
            return Err(CidrError::TooMany(nets.len()));
        }
        if nets.is_empty() {
            return Ok(Self::default());
        }
        nets.shrink_to_fit();
        Ok(Self(Arc::new(nets)))
    }

    /// Parse entries such as `10.0.0.0/8` or `2001:db8::1`; the error names the first bad one.
    /// More than [`MAX_CIDRS`] entries are refused before any is parsed.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, CidrError> {
        if entries.len() > MAX_CIDRS {
            return Err(CidrError::TooMany(entries.len()));
        }
        let nets = entries
            .iter()
            .map(|e| e.as_ref().parse())
            .collect::<Result<Vec<Cidr>, _>>()?;
        Self::new(nets)
    }

    /// Parse a comma-separated list (the command line's form); blank entries are ignored, so
    /// an empty string is the empty list.
    pub fn parse_commas(text: &str) -> Result<Self, CidrError> {
        let entries: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        Self::parse(&entries)
    }

    /// The networks, sorted.
    pub fn as_slice(&self) -> &[Cidr] {
        &self.0
    }

    /// Whether the list restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many networks.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether a client at `ip` may use the token: the list is empty, or a network holds `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.is_empty() || self.as_slice().iter().any(|net| net.contains(ip))
    }

    /// The networks as text, e.g. `["10.0.0.0/8"]`.
    pub fn to_strings(&self) -> Vec<String> {
        self.as_slice().iter().map(Cidr::to_string).collect()
    }

    /// How many lists share these networks.
    pub(crate) fn shared_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// Whether `other` holds the same networks in the same shared allocation.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.as_slice().iter().map(Cidr::to_string))
            .finish()
    }
}

impl fmt::Display for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl Serialize for CidrList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice().iter().map(|c| c.to_string()))
    }
}

impl<'de> Deserialize<'de> for CidrList {
    /// A JSON array of entries, at most [`MAX_CIDRS`]: normalized as [`CidrList::parse`] does.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = CidrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of at most {MAX_CIDRS} networks")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CidrList, A::Error> {
                let mut nets = Vec::new();
                while let Some(text) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    if nets.len() == MAX_CIDRS {
                        return Err(de::Error::custom(CidrError::TooMany(MAX_CIDRS + 1)));
                    }
                    nets.push(text.parse::<Cidr>().map_err(de::Error::custom)?);
                }
                CidrList::new(nets).map_err(de::Error::custom)
            }
        }
        d.deserialize_seq(ListVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> CidrList {
        CidrList::parse(entries).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn entries_are_normalized_deduplicated_and_sorted() {
        let l = list(&[
            "2001:db8::1/32",
            "10.1.2.3/8",
            "10.0.0.0/8",
            "192.168.1.7",
            "2001:db8::7",
        ]);
        assert_eq!(
            l.to_strings(),
            [
                "10.0.0.0/8",
                "192.168.1.7/32",
                "2001:db8::/32",
                "2001:db8::7/128"
            ]
        );
        assert_eq!(
            l,
            list(&[
                "192.168.1.7/32",
                "10.9.9.9/8",
                "2001:db8::7",
                "2001:db8::/32"
            ])
        );
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"["10.0.0.0/8","192.168.1.7/32","2001:db8::/32","2001:db8::7/128"]"#
        );
        let back: CidrList = serde_json::from_str(r#"["10.1.2.3/8","10.0.0.0/8"]"#).unwrap();
        assert_eq!(back.to_strings(), ["10.0.0.0/8"]);
        assert!(list(&[]).is_empty());
        assert_eq!(
            CidrList::parse_commas(" 10.0.0.1 , ,::1")
                .unwrap()
                .to_strings(),
            ["10.0.0.1/32", "::1/128"]
        );
        assert!(CidrList::parse_commas("").unwrap().is_empty());
    }

    #[test]
    fn ipv4_networks_match_their_addresses_only() {
        let l = list(&["10.0.0.0/8", "192.168.1.7"]);
        assert!(l.allows(ip("10.255.1.2")));
        assert!(l.allows(ip("192.168.1.7")));
        assert!(!l.allows(ip("11.0.0.1")));
        assert!(!l.allows(ip("192.168.1.8")));
        assert!(
            !l.allows(ip("::a00:1")),
            "an IPv4-compatible IPv6 address is not IPv4"
        );
        assert!(!l.allows(ip("2001:db8::1")));
    }

    #[test]
    fn ipv6_networks_match_their_addresses_only() {
        let l = list(&["2001:db8::/32"]);
        assert!(l.allows(ip("2001:db8:ffff::1")));
        assert!(!l.allows(ip("2001:db9::1")));
        assert!(!l.allows(ip("10.0.0.1")));
        assert!(list(&["::1"]).allows(ip("::1")));
        assert!(!list(&["::1"]).allows(ip("127.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_networks() {
        let l = list(&["10.0.0.0/8"]);
        assert!(l.allows(ip("::ffff:10.1.2.3")));
        assert!(!l.allows(ip("::ffff:11.1.2.3")));
        // A mapped network is an IPv6 network: it never matches, so nobody should write one
        // expecting it to; the plain IPv4 network is the one that works.
        assert!(!list(&["::ffff:10.0.0.0/104"]).allows(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn zero_prefixes_match_their_whole_family() {
        let any4 = list(&["1.2.3.4/0"]);
        assert_eq!(any4.to_strings(), ["0.0.0.0/0"]);
        assert!(any4.allows(ip("203.0.113.9")));
        assert!(any4.allows(ip("::ffff:203.0.113.9")));
        assert!(!any4.allows(ip("2001:db8::1")));
        let any6 = list(&["::/0"]);
        assert!(any6.allows(ip("2001:db8::1")));
        assert!(!any6.allows(ip("203.0.113.9")));
    }

    #[test]
    fn the_empty_list_allows_everyone() {
        assert!(CidrList::default().allows(ip("203.0.113.9")));
        assert!(CidrList::default().allows(ip("::1")));
    }

    #[test]
    fn more_than_32_entries_are_refused_even_as_duplicates() {
        let many: Vec<String> = (0..33).map(|i| format!("10.0.0.{i}")).collect();
        assert_eq!(CidrList::parse(&many), Err(CidrError::TooMany(33)));
        assert_eq!(CidrList::parse(&many[..32]).unwrap().len(), 32);
        let json = serde_json::to_string(&many).unwrap();
        assert!(serde_json::from_str::<CidrList>(&json).is_err());
        let same = vec!["10.0.0.1"; 33];
        assert_eq!(CidrList::parse(&same), Err(CidrError::TooMany(33)));
    }

    #[test]
    fn garbage_is_refused_with_the_entry_named() {
        for bad in [
            "",
            "10.0.0",
            "10.0.0.256",
            "10.0.0.0/",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/8/8",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "10.0.0.0 /8",
            " 10.0.0.0/8",
            "fe80::1%eth0",
            "example.com",
            "010.0.0.1",
            "10.0.0.0/255",
            "10.0.0.0/1000",
            "::ffff:10.0.0.0/129",
        ] {
            let err = CidrList::parse(&[bad]).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "{bad}: {err}"
            );
        }
        assert!(serde_json::from_str::<CidrList>(r#"["10.0.0.0/8", 7]"#).is_err());
        assert!(serde_json::from_str::<CidrList>(r#""10.0.0.0/8""#).is_err());
        assert!(CidrList::parse_commas("10.0.0.0/8,nonsense")
            .unwrap_err()
            .to_string()
            .contains("nonsense"));
    }
}
