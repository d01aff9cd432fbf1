//! The health probe the `FROM scratch` images run (`<binary> healthcheck`): one plain
//! HTTP/1.1 GET with 3 s timeouts, no shell, curl or TLS needed in the image.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Connect, send and receive timeout of one probe.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// What kept a probe from getting a status code.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The URL is not `http://host:port/path`.
    #[error("only http:// URLs are supported, got `{url}`")]
    NotHttp {
        /// The URL given.
        url: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {authority}")]
    Resolve {
        /// `host:port` of the URL.
        authority: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to nothing.
    #[error("{authority} resolved to no address")]
    NoAddress {
        /// `host:port` of the URL.
        authority: String,
    },
    /// Connecting, sending or receiving failed.
    #[error("cannot {step} {addr}")]
    Io {
        /// `connect to`, `send to` or `read an answer from`.
        step: &'static str,
        /// The server's address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The answer did not start with an HTTP status line.
    #[error("{addr} did not answer HTTP: {head:?}")]
    NotHttpAnswer {
        /// The server's address.
        addr: SocketAddr,
        /// What it sent instead.
        head: String,
    },
}

/// GETs `url` (`http://host:port/path`) and returns the answer's status code.
pub fn get_url(url: &str) -> Result<u16, CheckError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| CheckError::NotHttp {
            url: url.to_string(),
        })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|source| CheckError::Resolve {
            authority: authority.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| CheckError::NoAddress {
            authority: authority.to_string(),
        })?;
    request(addr, authority, path)
}

/// GETs `path` from `addr` and returns the answer's status code. An unspecified address
/// (`0.0.0.0`, `::`: a server listening everywhere) is asked on loopback.
pub fn get(addr: SocketAddr, path: &str) -> Result<u16, CheckError> {
    let addr = loopback_if_unspecified(addr);
    request(addr, &addr.to_string(), path)
}

/// `addr` with an unspecified IP replaced by the loopback address of its family.
pub fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    if !addr.ip().is_unspecified() {
        return addr;
    }
    let ip = if addr.is_ipv6() {
        IpAddr::from(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::from(Ipv4Addr::LOCALHOST)
    };
    SocketAddr::new(ip, addr.port())
}

/// The verdict on a probe: `Ok` on 200, else the line that says why (the error with its
/// causes, `: `-separated).
pub fn verdict(target: &str, result: Result<u16, CheckError>) -> Result<(), String> {
    match result {
        Ok(200) => Ok(()),
        Ok(status) => Err(format!("{target} answered {status}")),
        Err(error) => {
            let mut line = format!("{target}: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                line.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            Err(line)
        }
    }
}

/// The exit code of `<binary> healthcheck`: 0 on 200, else 1 after printing the
/// [`verdict`] to stderr behind `prefix`.
pub fn exit_code(prefix: &str, target: &str, result: Result<u16, CheckError>) -> ExitCode {
    match verdict(target, result) {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            eprintln!("{prefix}: {line}");
            ExitCode::FAILURE
        }
    }
}

fn request(addr: SocketAddr, host: &str, path: &str) -> Result<u16, CheckError> {
    let io = |step| move |source| CheckError::Io { step, addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io("connect to"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(io("connect to"))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io("send to"))?;
    // "HTTP/1.1 200" is 12 bytes; a server may send it in pieces.
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match stream
            .read(&mut head[n..])
            .map_err(io("read an answer from"))?
        {
            0 => break,
            k => n += k,
        }
    }
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| CheckError::NotHttpAnswer {
            addr,
            head: text.into_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    /// A one-shot server on 127.0.0.1: returns its address and a handle that yields the
    /// request head it received after sending `answer` (in two writes).
    fn server(answer: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let mut stream = reader.into_inner();
            let (first, rest) = answer.split_at(answer.len().min(5));
            stream.write_all(first).unwrap();
            stream.flush().unwrap();
            stream.write_all(rest).unwrap();
            head
        });
        (addr, handle)
    }

    #[test]
    fn url_probe_returns_the_status_and_sends_host_and_path() {
        let (addr, handle) = server(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let status = get_url(&format!("http://{addr}/health?x=1")).unwrap();
        assert_eq!(status, 503);
        let head = handle.join().unwrap();
        assert_eq!(head[0], "GET /health?x=1 HTTP/1.1");
        assert!(head.contains(&format!("Host: {addr}")), "{head:?}");
    }

    #[test]
    fn url_without_path_asks_for_root() {
        let (addr, handle) = server(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(get_url(&format!("http://{addr}")).unwrap(), 200);
        assert_eq!(handle.join().unwrap()[0], "GET / HTTP/1.1");
    }

    #[test]
    fn address_probe_uses_loopback_for_an_unspecified_address() {
        let (addr, handle) = server(b"HTTP/1.1 200 OK\r\n\r\n");
        let everywhere = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        assert_eq!(get(everywhere, "/health").unwrap(), 200);
        assert_eq!(handle.join().unwrap()[0], "GET /health HTTP/1.1");
        assert_eq!(
            loopback_if_unspecified("[::]:8766".parse().unwrap()),
            "[::1]:8766".parse::<SocketAddr>().unwrap()
        );
        let fixed: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert_eq!(loopback_if_unspecified(fixed), fixed);
    }

    #[test]
    fn verdict_passes_200_only_and_spells_out_causes() {
        assert_eq!(verdict("/health", Ok(200)), Ok(()));
        assert_eq!(
            verdict("/health", Ok(503)),
            Err("/health answered 503".to_string())
        );
        let refused = CheckError::Io {
            step: "connect to",
            addr: "127.0.0.1:9".parse().unwrap(),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        };
        assert_eq!(
            verdict("http://127.0.0.1:9/health", Err(refused)),
            Err("http://127.0.0.1:9/health: cannot connect to 127.0.0.1:9: refused".to_string())
        );
        assert_eq!(exit_code("test", "/health", Ok(200)), ExitCode::SUCCESS);
        assert_eq!(exit_code("test", "/health", Ok(500)), ExitCode::FAILURE);
    }

    #[test]
    fn errors_say_what_failed() {
        let e = get_url("https://127.0.0.1/health").unwrap_err();
        assert_eq!(
            e.to_string(),
            "only http:// URLs are supported, got `https://127.0.0.1/health`"
        );
        let (addr, handle) = server(b"SSH-2.0-OpenSSH\r\n");
        let e = get(addr, "/health").unwrap_err();
        assert!(
            e.to_string().contains("did not answer HTTP") && e.to_string().contains("SSH-2.0"),
            "{e}"
        );
        handle.join().unwrap();
        // A port that was just free: nothing listens there.
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = get(free, "/health").unwrap_err();
        assert!(
            e.to_string().starts_with("cannot connect to 127.0.0.1:"),
            "{e}"
        );
        assert!(
            std::error::Error::source(&e).is_some(),
            "the OS error is kept as the source"
        );
    }
}
