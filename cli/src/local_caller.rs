//! Who counts as a caller on this machine, for what only such callers may read: the
//! viewer's pages and `/metrics`, which both name hook ids (secrets).
//!
//! A loopback peer, naming a loopback host (a web page elsewhere cannot read it
//! through DNS rebinding: its host name pointed at 127.0.0.1 still arrives as that
//! name), and not forwarded by a reverse proxy on this machine (which connects from
//! loopback, but what it forwards came from elsewhere).

use std::net::IpAddr;

use http::HeaderMap;

/// Headers a proxy adds to what it forwards.
const FORWARDING_HEADERS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-real-ip",
    "via",
];

/// Whether a request from `peer` with these headers comes from this machine.
pub fn is_local(peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let proxied = FORWARDING_HEADERS
        .iter()
        .any(|name| headers.contains_key(*name));
    peer.is_some_and(|ip| ip.to_canonical().is_loopback()) && is_loopback_host(host) && !proxied
}

fn is_loopback_host(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_host_names() {
        for host in [
            "localhost",
            "LOCALHOST:3000",
            "127.0.0.1:3000",
            "[::1]:80",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(Some(host)), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:3000",
            "10.0.0.1",
            "[fe80::1]",
            "",
        ] {
            assert!(!is_loopback_host(Some(host)), "{host}");
        }
        assert!(!is_loopback_host(None));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut request = http::Request::builder();
        for (name, value) in pairs {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0.headers
    }

    #[test]
    fn a_loopback_peer_naming_a_loopback_host_without_a_proxy() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "203.0.113.7".parse().unwrap();
        let direct = headers(&[("host", "127.0.0.1:3000")]);
        assert!(is_local(Some(local), &direct));
        assert!(is_local(Some(mapped), &direct));
        assert!(!is_local(Some(remote), &direct));
        assert!(!is_local(None, &direct));
        // DNS rebinding: a loopback peer, but a page's own host name.
        assert!(!is_local(
            Some(local),
            &headers(&[("host", "evil.example:3000")])
        ));
        assert!(!is_local(Some(local), &HeaderMap::new()));
        // A reverse proxy on this machine, forwarding someone else.
        for forwarded in ["forwarded", "x-forwarded-for", "x-real-ip", "via"] {
            let proxied = headers(&[("host", "localhost:3000"), (forwarded, "1.2.3.4")]);
            assert!(!is_local(Some(local), &proxied), "{forwarded}");
        }
    }
}
