//! Settings of the tool runtime (env + flags, read once with the LLM settings).

use clap::Args;
use ipnet::IpNet;
use std::net::IpAddr;

/// How tools are run.
#[derive(Debug, Clone, Args)]
pub struct ToolSettings {
    /// Comma-separated hosts, IPs or CIDRs that webhook tools may reach although they
    /// resolve to private, loopback or link-local addresses (refused otherwise, so a
    /// tool URL cannot become a way into the cluster).
    #[arg(long, env = "TOOL_URL_ALLOWLIST", value_parser = parse_allowlist, default_value = "")]
    pub tool_url_allowlist: Allowlist,

    /// Largest webhook answer read, in bytes; a bigger one is an error result.
    #[arg(long, env = "TOOL_MAX_RESPONSE_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(256..=16_777_216))]
    pub tool_max_response_bytes: u32,

    /// Largest tool result put in the prompt, in characters (longer ones are cut).
    #[arg(long, env = "TOOL_MAX_RESULT_CHARS", default_value_t = 16_000,
          value_parser = clap::value_parser!(u32).range(64..=1_000_000))]
    pub tool_max_result_chars: u32,

    /// Seconds between checks of a knowledge base's folder for changed files.
    #[arg(long, env = "KNOWLEDGE_BASE_RELOAD_SECS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub knowledge_base_reload_secs: u64,
}

impl ToolSettings {
    /// Every default, ignoring the environment (tests start here and override).
    pub fn defaults() -> Self {
        use clap::{Command, FromArgMatches};
        let matches = <Self as Args>::augment_args(Command::new("tools"))
            .try_get_matches_from(["tools"])
            .expect("defaults parse");
        Self::from_arg_matches(&matches).expect("defaults parse")
    }

    /// Parses a `TOOL_URL_ALLOWLIST` value.
    pub fn allow(mut self, list: &str) -> Self {
        self.tool_url_allowlist = parse_allowlist(list).expect("a valid allowlist");
        self
    }
}

/// Hosts and networks exempt from the private-address refusal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowlist {
    /// Lower-case host names, matched against the URL's host.
    pub hosts: Vec<String>,
    pub nets: Vec<IpNet>,
}

impl Allowlist {
    /// Whether `ip`, reached through the URL host `host`, may be called.
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        is_public(ip)
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
            || self.nets.iter().any(|net| net.contains(&ip))
    }
}

fn parse_allowlist(raw: &str) -> Result<Allowlist, String> {
    let mut list = Allowlist::default();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if let Ok(net) = item.parse::<IpNet>() {
            list.nets.push(net);
        } else if let Ok(ip) = item.parse::<IpAddr>() {
            list.nets.push(IpNet::from(ip));
        } else if item
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            list.hosts.push(item.to_ascii_lowercase());
        } else {
            return Err(format!("`{item}` is not a host, IP or CIDR"));
        }
    }
    Ok(list)
}

/// Addresses anyone on the internet may be sent to: not loopback, private, link-local,
/// unspecified, shared (CGNAT), broadcast, multicast or documentation ranges.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link-local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_allowlist_names_hosts_ips_and_networks() {
        let list = parse_allowlist("127.0.0.1, tools.internal ,10.0.0.0/8").unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(list.permits("localhost", lo));
        assert!(list.permits("x", "10.9.9.9".parse().unwrap()));
        assert!(list.permits("Tools.Internal", "192.168.0.5".parse().unwrap()));
        assert!(!list.permits("x", "192.168.0.5".parse().unwrap()));
        assert!(!Allowlist::default().permits("localhost", lo));
        assert!(parse_allowlist("a b").is_err());
        assert_eq!(parse_allowlist("").unwrap(), Allowlist::default());
    }
}
