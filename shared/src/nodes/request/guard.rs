//! Where an HTTP node may connect. Cloud metadata and link-local addresses are refused
//! always; loopback and private ranges unless the deployment allows them. Names are
//! checked after DNS resolution (a resolver that drops refused addresses), IP literals
//! before every request and on every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What a deployment lets HTTP nodes reach beyond the public internet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// 127.0.0.0/8 and ::1 (local development, tests).
    pub allow_loopback: bool,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7 (a VPC's own services).
    pub allow_private: bool,
}

const EC2_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

impl NetworkPolicy {
    /// `Err` names why the address is refused.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        // An IPv6 address that carries an IPv4 one is judged by the IPv4 address
        // (a NAT64 or 6to4 gateway would deliver it there).
        let asked = ip;
        let ip = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        // Named as asked, and as judged when that differs.
        let named = if asked == ip {
            ip.to_string()
        } else {
            format!("{asked} (that is {ip})")
        };
        let refuse = |why: &str| Err(format!("requests to {named} are not allowed ({why})"));
        match ip {
            IpAddr::V4(v4) => {
                if v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_broadcast()
                    || v4.is_multicast()
                    || v4.octets()[0] == 0
                {
                    return refuse("link-local, cloud metadata or reserved address");
                }
                if v4.is_loopback() && !self.allow_loopback {
                    return refuse("loopback");
                }
                if is_private_v4(v4) && !self.allow_private {
                    return refuse("private network");
                }
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                if v6 == EC2_METADATA_V6
                    || (first & 0xffc0) == 0xfe80
                    || v6.is_unspecified()
                    || v6.is_multicast()
                {
                    return refuse("link-local, cloud metadata or reserved address");
                }
                if v6.is_loopback() && !self.allow_loopback {
                    return refuse("loopback");
                }
                // Unique local fc00::/7, deprecated site-local fec0::/10, and local
                // NAT64 64:ff9b:1::/48 (which may translate to anything private).
                let private = (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfec0
                    || (first == 0x64 && v6.segments()[1] == 0xff9b && v6.segments()[2] == 1);
                if private && !self.allow_private {
                    return refuse("private network");
                }
                // Teredo hides its IPv4 address: refused rather than decoded.
                if first == 0x2001 && v6.segments()[1] == 0 {
                    return refuse("Teredo tunnel address");
                }
            }
        }
        Ok(())
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`) address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // `::` and `::1` are themselves (unspecified, loopback).
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private() || (a == 100 && (64..128).contains(&b))
}

/// A DNS resolver that keeps only allowed addresses, so a name that points at a
/// refused address (DNS rebinding included) never gets a connection.
pub struct GuardedResolver {
    pub policy: NetworkPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refusal = Some(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refusal.unwrap_or_else(|| format!("{host} has no address"));
                return Err(why.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Checks a URL whose host is an IP literal (names are checked by the resolver).
pub fn check_url(policy: &NetworkPolicy, url: &reqwest::Url) -> Result<(), String> {
    match url.host() {
        Some(url::Host::Ipv4(v4)) => policy.check(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => policy.check(IpAddr::V6(v6)),
        Some(url::Host::Domain(_)) => match url.scheme() {
            "http" | "https" => Ok(()),
            other => Err(format!("{other}: URLs are not allowed")),
        },
        None => Err("the URL has no host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        let open = NetworkPolicy {
            allow_loopback: true,
            allow_private: true,
        };
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "0.0.0.0",
            "::ffff:169.254.169.254",
            "::",
        ] {
            assert!(open.check(ip.parse().unwrap()).is_err(), "{ip}");
        }
    }

    #[test]
    fn loopback_and_private_need_permission() {
        let closed = NetworkPolicy::default();
        for ip in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(closed.check(ip.parse().unwrap()).is_err(), "{ip}");
        }
        let loopback = NetworkPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        assert!(loopback.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(loopback.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(closed.check("93.184.216.34".parse().unwrap()).is_ok());
        // IPv6 addresses that carry a refused IPv4 address.
        for ip in [
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            "::10.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "64:ff9b:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::ffff:169.254.169.254",
        ] {
            let refused = closed.check(ip.parse().unwrap()).expect_err(ip);
            // The refusal names the address as asked.
            let shown: std::net::IpAddr = ip.parse().unwrap();
            assert!(refused.contains(&shown.to_string()), "{refused}");
        }
        assert_eq!(
            closed
                .check("64:ff9b::a9fe:a9fe".parse().unwrap())
                .unwrap_err(),
            "requests to 64:ff9b::a9fe:a9fe (that is 169.254.169.254) are not allowed (link-local, cloud metadata or reserved address)"
        );
        assert!(closed.check("64:ff9b::5db8:d822".parse().unwrap()).is_ok());
        assert!(closed.check("2002:5db8:d822::1".parse().unwrap()).is_ok());
        assert!(closed.check("2606:2800:220:1::1".parse().unwrap()).is_ok());
    }
}
