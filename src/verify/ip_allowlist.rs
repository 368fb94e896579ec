//! Peer-address allowlists: CIDRs and bare addresses, IPv4 and IPv6.
//!
//! An IPv4 peer reached over a dual-stack socket shows up as an IPv4-mapped IPv6 address
//! (`::ffff:192.0.2.1`); it matches IPv4 ranges, so operators can write the ranges providers
//! publish.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::ConfigError;
use crate::verify::VerifyError;
use crate::webhook::RawWebhook;

/// The networks a peer must be in. Not secret, so `Debug` is derived.
#[derive(Debug, Clone)]
pub struct IpAllowlist {
    networks: Vec<IpNet>,
}

impl IpAllowlist {
    /// Parses `cidrs` (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`); `key` names the list in
    /// errors, which point at the offending entry (`sources[0].allowed_cidrs[2]`).
    pub fn parse(key: &str, cidrs: &[String]) -> Result<Self, ConfigError> {
        let networks = cidrs
            .iter()
            .enumerate()
            .map(|(index, text)| {
                parse_network(text.trim()).ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{key}[{index}]"),
                        format!("`{text}` is not an ip address or cidr"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IpAllowlist { networks })
    }

    /// Whether `address` is in any listed network.
    pub fn contains(&self, address: IpAddr) -> bool {
        // Both forms are tried so a list may also name the mapped range `::ffff:0:0/96` itself.
        let canonical = address.to_canonical();
        self.networks
            .iter()
            .any(|network| network.contains(&canonical) || network.contains(&address))
    }

    /// A peer the transport could not identify is refused.
    pub fn check(&self, webhook: &RawWebhook) -> Result<(), VerifyError> {
        match webhook.remote_addr {
            Some(address) if self.contains(address) => Ok(()),
            _ => Err(VerifyError::AddressNotAllowed),
        }
    }
}

/// A CIDR, or a bare address taken as a single-host network.
fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(cidrs: &[&str]) -> IpAllowlist {
        let cidrs: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
        IpAllowlist::parse("sources[0].allowed_cidrs", &cidrs).unwrap()
    }

    fn from(address: Option<&str>) -> RawWebhook {
        RawWebhook {
            remote_addr: address.map(|a| a.parse().unwrap()),
            ..RawWebhook::for_test("/w", &[])
        }
    }

    #[test]
    fn ipv4_cidrs_and_bare_addresses() {
        let l = list(&["10.0.0.0/8", "192.0.2.7", " 198.51.100.0/24 "]);
        for ok in ["10.1.2.3", "192.0.2.7", "198.51.100.255"] {
            assert_eq!(l.check(&from(Some(ok))), Ok(()), "{ok}");
        }
        for bad in ["11.0.0.1", "192.0.2.8", "198.51.101.0"] {
            assert_eq!(
                l.check(&from(Some(bad))),
                Err(VerifyError::AddressNotAllowed),
                "{bad}"
            );
        }
    }

    #[test]
    fn ipv6_cidrs_and_bare_addresses() {
        let l = list(&["2001:db8::/32", "fe80::1"]);
        assert_eq!(l.check(&from(Some("2001:db8:1::5"))), Ok(()));
        assert_eq!(l.check(&from(Some("fe80::1"))), Ok(()));
        assert!(l.check(&from(Some("2001:db9::1"))).is_err());
        assert!(l.check(&from(Some("fe80::2"))).is_err());
        assert!(l.check(&from(Some("10.0.0.1"))).is_err());
    }

    #[test]
    fn ipv4_mapped_ipv6_matches_ipv4_ranges() {
        let l = list(&["192.0.2.0/24"]);
        assert_eq!(l.check(&from(Some("::ffff:192.0.2.9"))), Ok(()));
        assert!(l.check(&from(Some("::ffff:192.0.3.9"))).is_err());
        // The mapped range itself may be listed too.
        let mapped = list(&["::ffff:192.0.2.0/120"]);
        assert_eq!(mapped.check(&from(Some("::ffff:192.0.2.9"))), Ok(()));
    }

    #[test]
    fn unknown_peer_is_refused() {
        assert_eq!(
            list(&["0.0.0.0/0", "::/0"]).check(&from(None)),
            Err(VerifyError::AddressNotAllowed)
        );
    }

    #[test]
    fn bad_entries_are_named_by_index() {
        let cidrs: Vec<String> = ["10.0.0.0/8", "10.0.0.0/33", "nope"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        let error = IpAllowlist::parse("sources[3].allowed_cidrs", &cidrs).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("sources[3].allowed_cidrs[1]"), "{message}");
        assert!(message.contains("10.0.0.0/33"), "{message}");
        let error = IpAllowlist::parse("k", &["".to_string()]).unwrap_err();
        assert!(error.to_string().contains("k[0]"), "{error}");
    }
}
