//! `spark-sim healthcheck --url URL`: the Docker HEALTHCHECK of a `FROM scratch`
//! image, where there is no shell and no curl. Plain std TCP, HTTP/1.0.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// GETs `url` (`http://host:port/path`); `Ok(())` only on status 200.
pub fn healthcheck(url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}`: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(idx) => (&rest[..idx], &rest[idx..]),
        None => (rest, "/"),
    };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve `{authority}`: {err}"))?
        .next()
        .ok_or_else(|| format!("`{authority}` has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|err| err.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")
        .map_err(|err| format!("cannot send the request: {err}"))?;
    let mut head = [0u8; 32];
    let mut len = 0;
    while len < 12 {
        let n = stream
            .read(&mut head[len..])
            .map_err(|err| format!("cannot read the response: {err}"))?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let status_line = String::from_utf8_lossy(&head[..len]);
    let status = status_line.split(' ').nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(format!(
            "{url} answered `{}`",
            status_line.lines().next().unwrap_or("")
        ))
    }
}
