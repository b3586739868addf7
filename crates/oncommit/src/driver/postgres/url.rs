//! A PostgreSQL URL as libpq reads it: host lists (`h1:5432,h2:5432`, or `host=`/`port=`
//! parameters), `target_session_attrs`, `connect_timeout`, and oncommit's own `pooler`.
//! sqlx reads one host and ignores the rest (launchbadge/sqlx#2290), so those are taken out
//! here and the remainder, with one host, is left to sqlx.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::driver::options::Pooler;

/// The server roles a connection may be opened to: libpq's `target_session_attrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetSessionAttrs {
    /// Any server (the default).
    Any,
    /// One whose sessions may write (`transaction_read_only` is off).
    ReadWrite,
    /// One whose sessions cannot write.
    ReadOnly,
    /// One not in recovery.
    Primary,
    /// One in recovery (a hot standby).
    Standby,
    /// A standby if any is up, else any server.
    PreferStandby,
}

impl TargetSessionAttrs {
    fn parse(value: &str) -> Result<TargetSessionAttrs, String> {
        Ok(match value {
            "any" => TargetSessionAttrs::Any,
            "read-write" => TargetSessionAttrs::ReadWrite,
            "read-only" => TargetSessionAttrs::ReadOnly,
            "primary" => TargetSessionAttrs::Primary,
            "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            other => {
                return Err(format!(
                    "invalid target_session_attrs `{other}` (expected any, read-write, read-only, primary, standby or prefer-standby)"
                ));
            }
        })
    }

    /// Whether a server in this role suits: `read_only` is its `transaction_read_only`,
    /// `in_recovery` its `pg_is_in_recovery()`.
    pub(crate) fn accepts(self, read_only: bool, in_recovery: bool) -> bool {
        match self {
            TargetSessionAttrs::Any => true,
            TargetSessionAttrs::ReadWrite => !read_only,
            TargetSessionAttrs::ReadOnly => read_only,
            TargetSessionAttrs::Primary => !in_recovery,
            TargetSessionAttrs::Standby | TargetSessionAttrs::PreferStandby => in_recovery,
        }
    }

    /// What a server already in use must keep being: `prefer-standby` took a standby if one
    /// was up, and anything else in its place; every other value means what it says.
    pub(crate) fn in_use(self) -> TargetSessionAttrs {
        match self {
            TargetSessionAttrs::PreferStandby => TargetSessionAttrs::Any,
            other => other,
        }
    }

    /// What the URL asked for, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby => "standby",
            TargetSessionAttrs::PreferStandby => "prefer-standby",
        }
    }
}

/// One server of a host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    /// A name, an address, or a Unix socket directory (starting with `/`).
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed PostgreSQL URL.
#[derive(Debug, Clone)]
pub(crate) struct PgUrl {
    /// The servers to try, in order; never empty.
    pub(crate) hosts: Vec<HostPort>,
    /// Everything else sqlx understands, for the first host.
    pub(crate) options: PgConnectOptions,
    pub(crate) target: TargetSessionAttrs,
    /// Longest wait for one host to answer before the next is tried (libpq's, in seconds).
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) pooler: Pooler,
    /// Whether the URL names an `sslmode` (else loopback servers get plaintext).
    pub(crate) names_sslmode: bool,
}

/// The parameters taken out of the URL before sqlx reads it.
const OWN_PARAMS: &[&str] = &["host", "port", "target_session_attrs", "connect_timeout", "pooler"];

impl PgUrl {
    /// Parses `url` (`postgres://` or `postgresql://`); the error says what is wrong without
    /// repeating the URL, which may hold a password.
    pub(crate) fn parse(url: &str) -> Result<PgUrl, String> {
        let (scheme, rest) = url.split_once("://").ok_or("expected postgres://host/db")?;
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, q),
            None => (rest, ""),
        };
        // The authority ends at the first `/` after the user info, which may hold one.
        let after_user = before_query.rfind('@').map_or(0, |at| at + 1);
        let path_start = before_query[after_user..].find('/').map_or(before_query.len(), |i| after_user + i);
        let (authority, path) = before_query.split_at(path_start);
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (Some(user), hosts),
            None => (None, authority),
        };

        let mut kept: Vec<(String, String)> = Vec::new();
        let (mut host_param, mut port_param) = (None, None);
        let mut target = TargetSessionAttrs::Any;
        let mut connect_timeout = None;
        let mut pooler = Pooler::None;
        let mut names_sslmode = false;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "host" => host_param = Some(value.into_owned()),
                "port" => port_param = Some(value.into_owned()),
                "target_session_attrs" => target = TargetSessionAttrs::parse(&value)?,
                "connect_timeout" => {
                    let secs: u64 =
                        value.trim().parse().map_err(|_| format!("invalid connect_timeout `{value}` (seconds)"))?;
                    // libpq: zero, or no value, waits for ever; less than 2 s is taken as 2.
                    connect_timeout = (secs > 0).then(|| Duration::from_secs(secs.max(2)));
                }
                "pooler" => pooler = Pooler::parse(&value)?,
                other => {
                    names_sslmode |= other == "sslmode" || other == "ssl-mode";
                    kept.push((key.into_owned(), value.into_owned()));
                }
            }
        }
        debug_assert!(kept.iter().all(|(k, _)| !OWN_PARAMS.contains(&k.as_str())));

        let mut hosts = Vec::new();
        match &host_param {
            // Parameters win over the URL's authority, as in libpq.
            Some(list) => {
                let names: Vec<&str> = list.split(',').map(str::trim).collect();
                let ports = port_list(port_param.as_deref(), names.len())?;
                for (name, port) in names.into_iter().zip(ports) {
                    hosts.push(HostPort { host: name.to_owned(), port: port.unwrap_or(5432) });
                }
            }
            None if !hostlist.is_empty() => {
                let default_ports = port_list(port_param.as_deref(), hostlist.split(',').count())?;
                for (spec, default_port) in hostlist.split(',').zip(default_ports) {
                    hosts.push(host_port(spec, default_port)?);
                }
            }
            None => {}
        }

        // One host for sqlx: the first (the others are swapped in by `PgUrl::for_host`).
        let mut single = format!("{scheme}://");
        if let Some(user) = userinfo {
            // libpq takes a password with an unencoded `/`, `?` or `#`; a URL parser would
            // end the authority there.
            for ch in user.chars() {
                match ch {
                    '/' => single.push_str("%2F"),
                    '?' => single.push_str("%3F"),
                    '#' => single.push_str("%23"),
                    other => single.push(other),
                }
            }
            single.push('@');
        }
        if let Some(first) = hosts.first() {
            if !first.host.starts_with('/') {
                single.push_str(&first.to_string());
            }
        }
        single.push_str(path);
        if !kept.is_empty() {
            single.push('?');
            single.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&kept).finish());
        }
        let mut options = PgConnectOptions::from_str(&single).map_err(|e| e.to_string())?;
        if hosts.is_empty() {
            // No host named: sqlx's default (PGHOST, a socket, or localhost).
            hosts.push(HostPort { host: options.get_host().to_owned(), port: options.get_port() });
        } else {
            options = options.host(&hosts[0].host).port(hosts[0].port);
        }
        Ok(PgUrl { hosts, options, target, connect_timeout, pooler, names_sslmode })
    }

    /// The connect options for host `i` of the list, as oncommit opens its sessions there.
    pub(crate) fn for_host(&self, i: usize) -> PgConnectOptions {
        let h = &self.hosts[i];
        let mut options = self.options.clone().host(&h.host).port(h.port);
        if is_local(&options) && !self.names_sslmode && std::env::var_os("PGSSLMODE").is_none() {
            // TLS over loopback protects nothing and costs each new connection tens of
            // milliseconds of handshake here: ask for it to have it.
            options = options.ssl_mode(sqlx::postgres::PgSslMode::Disable);
        }
        if self.pooler == Pooler::Transaction {
            // A transaction pooler refuses startup parameters it does not track, and hands
            // each transaction whatever server session is free: statements prepared in one
            // are not in the next, and another client's of the same name may be. So no
            // statement is cached (each gets a fresh name, and `DEALLOCATE ALL` at every
            // BEGIN clears what was left on the session: see `driver::postgres::BEGIN`).
            options = options.extra_float_digits(None).statement_cache_capacity(0);
        }
        options
    }

    /// The host list and database, for messages: `h1:5432,h2:5432/db`.
    pub(crate) fn target(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
        format!("{}/{}", hosts.join(","), self.options.get_database().unwrap_or_default())
    }
}

/// Whether the server is on this machine: a Unix socket or a loopback address.
pub(crate) fn is_local(opts: &PgConnectOptions) -> bool {
    let host = opts.get_host();
    host.starts_with('/')
        || opts.get_socket().is_some()
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || host.eq_ignore_ascii_case("localhost")
}

/// `port=` as a list for `n` hosts: none, one for all, or one each (libpq's rule).
fn port_list(param: Option<&str>, n: usize) -> Result<Vec<Option<u16>>, String> {
    let Some(param) = param else { return Ok(vec![None; n]) };
    let ports: Vec<u16> = param.split(',').map(|p| parse_port(p.trim())).collect::<Result<_, _>>()?;
    match ports.len() {
        1 => Ok(vec![Some(ports[0]); n]),
        len if len == n => Ok(ports.into_iter().map(Some).collect()),
        len => Err(format!("{len} ports for {n} hosts (give one port, or one per host)")),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("invalid port number `{text}`")),
    }
}

/// One `host[:port]` of the authority, IPv6 in brackets; `default_port` when none is given.
fn host_port(spec: &str, default_port: Option<u16>) -> Result<HostPort, String> {
    let (host, port) = if let Some(v6) = spec.strip_prefix('[') {
        let (addr, tail) = v6.split_once(']').ok_or_else(|| format!("unclosed `[` in host `{spec}`"))?;
        (addr, tail.strip_prefix(':'))
    } else {
        match spec.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (spec, None),
        }
    };
    if host.is_empty() {
        return Err(format!("empty host in `{spec}`"));
    }
    let host = url::form_urlencoded::parse(format!("h={host}").as_bytes())
        .next()
        .map_or_else(|| host.to_owned(), |(_, h)| h.into_owned());
    let port = match port {
        Some(p) => parse_port(p)?,
        None => default_port.unwrap_or(5432),
    };
    Ok(HostPort { host, port })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hosts(url: &str) -> Vec<String> {
        PgUrl::parse(url).unwrap().hosts.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn host_lists_in_the_authority_and_in_parameters() {
        assert_eq!(hosts("postgres://app@10.0.0.1:5432,10.0.0.2:5433/app"), ["10.0.0.1:5432", "10.0.0.2:5433"]);
        assert_eq!(hosts("postgres://app@a,b:6000/app"), ["a:5432", "b:6000"]);
        assert_eq!(hosts("postgres://app@[::1]:5,h/app"), ["[::1]:5", "h:5432"]);
        assert_eq!(hosts("postgres:///app?host=a,b&port=1,2"), ["a:1", "b:2"]);
        assert_eq!(hosts("postgres:///app?host=a,b&port=7"), ["a:7", "b:7"]);
        assert_eq!(hosts("postgres://u@h/app"), ["h:5432"]);
        let url = PgUrl::parse("postgres://u:p@a:1,b:2/app?target_session_attrs=read-write&connect_timeout=3").unwrap();
        assert_eq!(url.target, TargetSessionAttrs::ReadWrite);
        assert_eq!(url.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(url.options.get_database(), Some("app"));
        assert_eq!(url.options.get_username(), "u");
        assert_eq!(url.for_host(1).get_host(), "b");
        assert_eq!(url.for_host(1).get_port(), 2);
        assert_eq!(url.target(), "a:1,b:2/app");
    }

    #[test]
    fn a_password_with_a_slash_keeps_its_host() {
        assert_eq!(hosts("postgres://u:p/w@h:6/db"), ["h:6"]);
        let url = PgUrl::parse("postgres://u:p/w@h:6/db").unwrap();
        assert_eq!(url.options.get_database(), Some("db"));
    }

    #[test]
    fn bad_values_are_refused_with_what_is_wrong() {
        for (url, says) in [
            ("postgres://h:notaport/db", "invalid port number `notaport`"),
            ("postgres://h/db?target_session_attrs=writer", "invalid target_session_attrs `writer`"),
            ("postgres://h/db?pooler=statement", "invalid pooler `statement`"),
            ("postgres://h/db?connect_timeout=soon", "invalid connect_timeout `soon`"),
            ("postgres:///db?host=a,b,c&port=1,2", "2 ports for 3 hosts"),
        ] {
            let err = PgUrl::parse(url).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn oncommit_s_own_parameters_are_not_passed_to_sqlx() {
        let url = PgUrl::parse("postgres://h/db?pooler=transaction&sslmode=require&application_name=x").unwrap();
        assert_eq!(url.pooler, Pooler::Transaction);
        assert!(url.names_sslmode);
        assert_eq!(url.options.get_application_name(), Some("x"));
    }
}
