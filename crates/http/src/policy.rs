use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use integrations_core::HttpError;
use ipnet::IpNet;

/// The one refusal message for internal and unresolvable destinations.
pub(crate) const NOT_ALLOWED: &str = "destination is not allowed or cannot be resolved";

/// Which destinations outbound requests may reach.
#[derive(Clone, Debug, Default)]
pub struct OutboundPolicy {
    allow: Vec<IpNet>,
}

impl OutboundPolicy {
    /// A policy that additionally allows the given networks (internal or not, http or https).
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Parses a comma-separated CIDR list such as `127.0.0.1/32,10.1.0.0/16`.
    pub fn from_cidr_list(list: &str) -> Result<Self, String> {
        let allow = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<IpNet>().map_err(|_| format!("invalid CIDR {s:?}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { allow })
    }

    /// This policy with more allowed networks (a tenant's own ranges); fails on a malformed CIDR.
    pub fn with_additional(&self, cidrs: &[String]) -> Result<Self, String> {
        let mut allow = self.allow.clone();
        allow.extend(Self::from_cidr_list(&cidrs.join(","))?.allow);
        Ok(Self { allow })
    }

    /// Whether a connection to `ip` is allowed; `https` tells whether the request is encrypted.
    pub fn check(&self, ip: IpAddr, https: bool) -> Result<(), HttpError> {
        let ip = canonical(ip);
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        if !is_public(ip) {
            tracing::debug!(%ip, "outbound address refused: internal");
            return Err(HttpError::Refused(NOT_ALLOWED.into()));
        }
        if !https {
            return Err(HttpError::Refused(
                "plain http is only allowed to allowlisted addresses".into(),
            ));
        }
        Ok(())
    }
}

/// Unwraps IPv4 addresses carried in IPv6 forms that route to them.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this" network
        || a == 10                             // private
        || a == 127                            // loopback
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 169 && b == 254)              // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // documentation
        || (a == 192 && b == 168)              // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100)   // documentation
        || (a == 203 && b == 0 && c == 113)    // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8);
    match segments[0] {
        // Well-known NAT64 (64:ff9b::/96) reaches the embedded IPv4 address; the rest of
        // 64:ff9b::/32 (local-use 64:ff9b:1::/48) translates into networks we cannot judge.
        0x0064 if segments[1] == 0xff9b => {
            segments[2..6].iter().all(|&s| s == 0) && is_public_v4(embedded_v4(segments[6], segments[7]))
        }
        // 6to4 (2002::/16) embeds an IPv4 address in the prefix.
        0x2002 => is_public_v4(embedded_v4(segments[1], segments[2])),
        // Teredo (2001::/32) and documentation (2001:db8::/32).
        0x2001 if segments[1] == 0 || segments[1] == 0x0db8 => false,
        // Only global unicast (2000::/3) is public.
        first => (0x2000..0x4000).contains(&first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &OutboundPolicy, ip: &str, https: bool) -> bool {
        policy.check(ip.parse().unwrap(), https).is_err()
    }

    #[test]
    fn refuses_internal_addresses_by_default() {
        let policy = OutboundPolicy::default();
        for ip in [
            "127.0.0.1",
            "127.0.0.2",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "::ffff:127.0.0.1",
            "64:ff9b:1::808:808",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(refused(&policy, ip, true), "{ip} should be refused");
        }
    }

    #[test]
    fn allows_public_https_but_not_public_http() {
        let policy = OutboundPolicy::default();
        for ip in ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"] {
            assert!(!refused(&policy, ip, true), "{ip} should be allowed");
            assert!(refused(&policy, ip, false), "{ip} over http should be refused");
        }
    }

    #[test]
    fn allowlist_admits_exactly_its_networks_even_over_http() {
        let policy = OutboundPolicy::from_cidr_list("127.0.0.1/32, 10.1.0.0/16").unwrap();
        assert!(!refused(&policy, "127.0.0.1", false));
        assert!(!refused(&policy, "::ffff:127.0.0.1", false));
        assert!(!refused(&policy, "10.1.2.3", false));
        assert!(refused(&policy, "127.0.0.2", false));
        assert!(refused(&policy, "127.0.0.2", true));
        assert!(refused(&policy, "::1", true));
        assert!(OutboundPolicy::from_cidr_list("nonsense").is_err());
    }
}
