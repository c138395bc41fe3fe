//! Reaching the control plane through an enterprise HTTP proxy: the
//! `HTTPS_PROXY` and `NO_PROXY` conventions, and an HTTP `CONNECT` tunnel
//! with optional basic authentication.

use std::net::IpAddr;

use anyhow::{Context, bail};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy from `HTTPS_PROXY` (or `https_proxy`, or `ALL_PROXY`).
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `user:password`, sent as `Proxy-Authorization: Basic`.
    credentials: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Proxy {
    /// The proxy without its credentials, safe for logs and messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "http://{}{}:{}",
            if self.credentials.is_some() { "***@" } else { "" },
            self.host,
            self.port
        )
    }
}

impl Proxy {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => bail!("proxy scheme {scheme}:// is not supported; use an http:// proxy"),
            None => url,
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(percent_decode(userinfo)), hostport),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => {
                (host, port.parse().with_context(|| format!("the proxy port in {url:?} is not a number"))?)
            }
            _ => (hostport, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("the proxy {url:?} has no host");
        }
        Ok(Self { host: host.to_owned(), port, credentials })
    }

    /// The proxy to use for `host`, from the environment.
    pub fn from_env(host: &str) -> anyhow::Result<Option<Self>> {
        let no_proxy = env_any(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        if bypasses(&no_proxy, host) {
            return Ok(None);
        }
        match env_any(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]) {
            Some(url) if !url.trim().is_empty() => Self::parse(url.trim()).map(Some),
            _ => Ok(None),
        }
    }

    /// Opens a TCP connection to the proxy and asks it for a tunnel to
    /// `host:port`.
    pub async fn connect(&self, host: &str, port: u16) -> anyhow::Result<TcpStream> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("cannot reach the proxy {self}"))?;
        let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(credentials) = &self.credentials {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            request.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.context("talking to the proxy")?;

        // Read the response head byte by byte: anything after it belongs to
        // the tunnel and must not be consumed.
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 {
                bail!("the proxy {self} sent an oversized response");
            }
            let byte =
                stream.read_u8().await.with_context(|| format!("the proxy {self} closed the connection"))?;
            head.push(byte);
        }
        let head = String::from_utf8_lossy(&head);
        let status = head.lines().next().unwrap_or_default();
        let code = status.split_whitespace().nth(1).unwrap_or_default();
        match code {
            "200" => Ok(stream),
            "407" => bail!(
                "the proxy {self} requires authentication (407); put user:password in HTTPS_PROXY, e.g. http://user:password@proxy:3128"
            ),
            _ => bail!("the proxy {self} refused the tunnel to {target}: {status}"),
        }
    }
}

fn env_any(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| std::env::var(name).ok())
}

/// Whether `NO_PROXY` exempts `host`: `*`, an exact host, a domain suffix
/// (`example.com` and `.example.com` both match `a.example.com`), an IP
/// address, or a CIDR block. Ports in entries are ignored.
pub fn bypasses(no_proxy: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.to_ascii_lowercase();
        if let Some((network, bits)) = entry.split_once('/') {
            return match (ip, network.parse::<IpAddr>(), bits.parse::<u8>()) {
                (Some(ip), Ok(network), Ok(bits)) => in_cidr(ip, network, bits),
                _ => false,
            };
        }
        let entry = strip_port(&entry);
        if let (Some(ip), Ok(entry_ip)) = (ip, entry.parse::<IpAddr>()) {
            return ip == entry_ip;
        }
        let domain = entry.trim_start_matches('.');
        host == domain || host.ends_with(&format!(".{domain}"))
    })
}

fn strip_port(entry: &str) -> &str {
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => entry,
    }
}

fn in_cidr(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let p = Proxy::parse("http://alice:s%40cret@proxy.corp:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.credentials.as_deref()),
            ("proxy.corp", 3128, Some("alice:s@cret"))
        );
        assert_eq!(p.to_string(), "http://***@proxy.corp:3128", "no credentials in messages");
        let p = Proxy::parse("proxy.corp:8080").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 8080));
        assert_eq!(Proxy::parse("http://[::1]:3128/").unwrap().host, "::1");
        assert!(Proxy::parse("socks5://proxy:1080").is_err());
        assert!(Proxy::parse("http://proxy:notaport").is_err());
    }

    #[test]
    fn no_proxy_matching() {
        for (list, host, expected) in [
            ("*", "anything.example", true),
            ("example.com", "cp.example.com", true),
            (".example.com", "cp.example.com", true),
            ("example.com", "example.com", true),
            ("example.com", "badexample.com", false),
            ("localhost,127.0.0.1", "127.0.0.1", true),
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.1.2.3", false),
            ("cp.example.com:8443", "cp.example.com", true),
            ("::1", "[::1]", true),
            ("", "cp.example.com", false),
            ("other.com", "cp.example.com", false),
        ] {
            assert_eq!(bypasses(list, host), expected, "{list:?} vs {host}");
        }
    }
}
