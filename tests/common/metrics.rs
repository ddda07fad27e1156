//! Reading portier's `/metrics` (the operations listener, plain HTTP).

/// `GET /metrics` over plain HTTP/1.0.
pub fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// Reviews portier answered on `endpoint`, whatever the outcome.
pub fn requests(metrics: &str, endpoint: &str) -> u64 {
    let prefix = format!("portier_admission_requests_total{{endpoint=\"{endpoint}\",");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}
