//! Which `Host` and `Origin` values a door answers (DNS-rebinding
//! protection): entries such as `localhost`, `name:port`, `https://host`,
//! `http://localhost:*` or `"*"`, checked once when the configuration
//! loads and matched against every request.

use http::Uri;
use http::header::{HOST, ORIGIN};
use http::request::Parts;
use http::uri::Authority;

use crate::settings::InvalidKey;

/// `Host` values of this machine's loopback: what a local-only door
/// answers by default (`[mcp] allowed_hosts`).
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Browser origins of pages served from this machine's loopback, any
/// port: what a local-only door answers by default (`[mcp]
/// allowed_origins`).
pub const LOOPBACK_ORIGINS: [&str; 3] =
    ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

/// Which hosts and origins a door answers, parsed from its section's
/// `allowed_hosts` and `allowed_origins`.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    any_host: bool,
    hosts: Vec<HostRule>,
    any_origin: bool,
    origins: Vec<OriginRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    host: String,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    /// `null`: sandboxed frames and `file:` pages.
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: PortRule,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRule {
    /// `:*`
    Any,
    /// An explicit port, or the scheme's default when the entry has none.
    Exact(u16),
}

/// A request's origin, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestOrigin {
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: Option<u16>,
    },
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn parse_host_rule(entry: &str) -> Result<HostRule, String> {
    let entry = entry.trim();
    // A bare IPv6 address (`::1`) is not an authority without brackets.
    if entry.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(HostRule {
            host: normalize_host(entry),
            port: None,
        });
    }
    let authority = Authority::try_from(entry)
        .ok()
        .filter(|a| !entry.is_empty() && !a.as_str().contains('@'))
        .ok_or_else(|| format!("`{entry}` is not a host name or host:port"))?;
    Ok(HostRule {
        host: normalize_host(authority.host()),
        port: authority.port_u16(),
    })
}

/// `scheme://host[:port]` (no path) or `null`.
fn parse_origin(value: &str) -> Option<RequestOrigin> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("null") {
        return Some(RequestOrigin::Null);
    }
    let uri = Uri::try_from(value).ok()?;
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || !matches!(uri.path(), "" | "/") || uri.query().is_some()
    {
        return None;
    }
    Some(RequestOrigin::Tuple {
        scheme: uri.scheme_str()?.to_ascii_lowercase(),
        host: normalize_host(authority.host()),
        port: authority.port_u16(),
    })
}

fn parse_origin_rule(entry: &str) -> Result<OriginRule, String> {
    let entry = entry.trim();
    let invalid = || {
        format!(
            "`{entry}` is not an origin such as https://host, https://host:8443 or http://localhost:*"
        )
    };
    let (base, any_port) = match entry.strip_suffix(":*") {
        Some(base) => (base, true),
        None => (entry, false),
    };
    match parse_origin(base).ok_or_else(invalid)? {
        RequestOrigin::Null if !any_port => Ok(OriginRule::Null),
        RequestOrigin::Null => Err(invalid()),
        RequestOrigin::Tuple { port: Some(_), .. } if any_port => Err(invalid()),
        RequestOrigin::Tuple { scheme, host, port } => {
            let port = if any_port {
                PortRule::Any
            } else {
                PortRule::Exact(port.or_else(|| default_port(&scheme)).ok_or_else(invalid)?)
            };
            Ok(OriginRule::Tuple { scheme, host, port })
        }
    }
}

/// Checks every entry of `[{section}] allowed_hosts` and `allowed_origins`;
/// the error names the key (`mcp.allowed_hosts[1]`) and what is wrong.
pub fn validate(section: &str, hosts: &[String], origins: &[String]) -> Result<(), InvalidKey> {
    if hosts.is_empty() {
        return Err(InvalidKey::new(
            format!("{section}.allowed_hosts"),
            "list the host names clients use, or \"*\" for any",
        ));
    }
    for (i, entry) in hosts.iter().enumerate() {
        if entry.trim() != "*" {
            parse_host_rule(entry)
                .map_err(|m| InvalidKey::new(format!("{section}.allowed_hosts[{i}]"), m))?;
        }
    }
    for (i, entry) in origins.iter().enumerate() {
        if entry.trim() != "*" {
            parse_origin_rule(entry)
                .map_err(|m| InvalidKey::new(format!("{section}.allowed_origins[{i}]"), m))?;
        }
    }
    Ok(())
}

impl Gate {
    /// The gate of validated entries (entries that do not parse, which
    /// [`validate`] refuses, are skipped: they allow nothing).
    pub fn new(hosts: &[String], origins: &[String]) -> Self {
        let is_star = |e: &String| e.trim() == "*";
        Self {
            any_host: hosts.iter().any(is_star),
            hosts: hosts
                .iter()
                .filter_map(|e| parse_host_rule(e).ok())
                .collect(),
            any_origin: origins.iter().any(is_star),
            origins: origins
                .iter()
                .filter_map(|e| parse_origin_rule(e).ok())
                .collect(),
        }
    }

    /// `Err(reason code)` when the request's `Host` or `Origin` is not
    /// served.
    pub fn check(&self, parts: &Parts) -> Result<(), &'static str> {
        if !self.any_host {
            let authority = match parts.headers.get(HOST) {
                Some(value) => value
                    .to_str()
                    .ok()
                    .and_then(|v| Authority::try_from(v).ok()),
                // HTTP/2 carries it in `:authority`.
                None => parts.uri.authority().cloned(),
            }
            .ok_or("host_missing")?;
            let host = normalize_host(authority.host());
            let port = authority.port_u16();
            let allowed = self
                .hosts
                .iter()
                .any(|rule| rule.host == host && rule.port.is_none_or(|p| Some(p) == port));
            if !allowed {
                return Err("host_not_allowed");
            }
        }
        let Some(origin) = parts.headers.get(ORIGIN) else {
            // Not a browser: nothing to rebind.
            return Ok(());
        };
        if self.any_origin {
            return Ok(());
        }
        let origin = origin
            .to_str()
            .ok()
            .and_then(parse_origin)
            .ok_or("origin_malformed")?;
        let allowed = self.origins.iter().any(|rule| match (rule, &origin) {
            (OriginRule::Null, RequestOrigin::Null) => true,
            (
                OriginRule::Tuple { scheme, host, port },
                RequestOrigin::Tuple {
                    scheme: o_scheme,
                    host: o_host,
                    port: o_port,
                },
            ) => {
                scheme == o_scheme
                    && host == o_host
                    && match port {
                        PortRule::Any => true,
                        PortRule::Exact(p) => o_port.or_else(|| default_port(o_scheme)) == Some(*p),
                    }
            }
            _ => false,
        });
        if allowed {
            Ok(())
        } else {
            Err("origin_not_allowed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A door's two lists, as a section holds them.
    #[derive(Default)]
    struct Lists {
        allowed_hosts: Vec<String>,
        allowed_origins: Vec<String>,
    }

    /// The loopback lists (`[mcp]`'s defaults).
    fn loopback() -> Lists {
        Lists {
            allowed_hosts: LOOPBACK_HOSTS.map(str::to_owned).to_vec(),
            allowed_origins: LOOPBACK_ORIGINS.map(str::to_owned).to_vec(),
        }
    }

    fn validate(config: &Lists) -> Result<(), InvalidKey> {
        super::validate("mcp", &config.allowed_hosts, &config.allowed_origins)
    }

    fn from_config(config: &Lists) -> Gate {
        Gate::new(&config.allowed_hosts, &config.allowed_origins)
    }

    fn gate(hosts: &[&str], origins: &[&str]) -> Gate {
        let config = Lists {
            allowed_hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
        };
        validate(&config).expect("valid");
        from_config(&config)
    }

    fn parts(host: Option<&str>, origin: Option<&str>) -> Parts {
        let mut request = http::Request::builder().uri("/mcp");
        if let Some(host) = host {
            request = request.header(HOST, host);
        }
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn loopback_hosts_are_served_by_default() {
        let g = from_config(&loopback());
        for host in ["localhost:8080", "127.0.0.1:1", "[::1]:8080", "LOCALHOST"] {
            assert_eq!(g.check(&parts(Some(host), None)), Ok(()), "{host}");
        }
        for host in ["evil.example:8080", "127.0.0.2", "localhost.evil.example"] {
            assert_eq!(
                g.check(&parts(Some(host), None)),
                Err("host_not_allowed"),
                "{host}"
            );
        }
        assert_eq!(g.check(&parts(None, None)), Err("host_missing"));
    }

    #[test]
    fn loopback_origins_are_served_by_default_and_others_refused() {
        let g = from_config(&loopback());
        let host = Some("127.0.0.1:8080");
        assert_eq!(g.check(&parts(host, Some("http://localhost:6274"))), Ok(()));
        assert_eq!(g.check(&parts(host, Some("http://127.0.0.1"))), Ok(()));
        for origin in [
            "http://evil.example",
            "https://localhost:1",
            "null",
            "garbage",
        ] {
            assert!(g.check(&parts(host, Some(origin))).is_err(), "{origin}");
        }
    }

    #[test]
    fn host_ports_and_stars() {
        let g = gate(&["airlock.example.com:443", "internal"], &[]);
        assert_eq!(
            g.check(&parts(Some("airlock.example.com:443"), None)),
            Ok(())
        );
        assert!(
            g.check(&parts(Some("airlock.example.com:8443"), None))
                .is_err()
        );
        assert!(g.check(&parts(Some("airlock.example.com"), None)).is_err());
        assert_eq!(g.check(&parts(Some("internal:9"), None)), Ok(()));
        let any = gate(&["*"], &[]);
        assert_eq!(any.check(&parts(Some("whatever:1"), None)), Ok(()));
    }

    #[test]
    fn origin_ports_follow_the_scheme() {
        let g = gate(
            &["*"],
            &[
                "https://app.example.com",
                "http://dev.example.com:*",
                "null",
            ],
        );
        let ok = |o| g.check(&parts(Some("h"), Some(o)));
        assert_eq!(ok("https://app.example.com"), Ok(()));
        assert_eq!(ok("https://app.example.com:443"), Ok(()));
        assert!(ok("https://app.example.com:8443").is_err());
        assert!(ok("http://app.example.com").is_err());
        assert_eq!(ok("http://dev.example.com:3000"), Ok(()));
        assert_eq!(ok("null"), Ok(()));
        // An empty list refuses every browser, and serves every other client.
        let strict = gate(&["*"], &[]);
        assert!(
            strict
                .check(&parts(Some("h"), Some("http://localhost")))
                .is_err()
        );
        assert_eq!(strict.check(&parts(Some("h"), None)), Ok(()));
        assert_eq!(
            gate(&["*"], &["*"]).check(&parts(Some("h"), Some("null"))),
            Ok(())
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let bad = |hosts: &[&str], origins: &[&str]| {
            validate(&Lists {
                allowed_hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
                allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            })
            .expect_err("invalid")
            .key
        };
        assert_eq!(bad(&[], &[]), "mcp.allowed_hosts");
        assert_eq!(bad(&["ok", "http://x/"], &[]), "mcp.allowed_hosts[1]");
        assert_eq!(bad(&["ok"], &["example.com"]), "mcp.allowed_origins[0]");
        assert_eq!(bad(&["ok"], &["https://x/path"]), "mcp.allowed_origins[0]");
        assert_eq!(bad(&["ok"], &["ftp://x"]), "mcp.allowed_origins[0]");
    }
}
