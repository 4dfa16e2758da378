//! Path-style and virtual-host-style addressing.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// `bucket.DOMAIN[:port]` is virtual-host style for each configured domain;
/// every other host (an IP address, `localhost`, a domain itself) is path
/// style. Unlike a catch-all, an IP literal is never taken for a bucket name.
#[derive(Debug, Clone)]
pub struct Domains {
    domains: Vec<String>,
}

impl Domains {
    /// Virtual hosts under these base domains.
    pub fn new(domains: Vec<String>) -> Self {
        Self { domains }
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        for domain in &self.domains {
            if let Some(bucket) = name
                .strip_suffix(domain.as_str())
                .and_then(|b| b.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(VirtualHost::new(name).with_bucket(bucket.to_owned()));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_subdomains_of_the_base_are_buckets() {
        let d = Domains::new(vec!["localhost".into(), "s3.example.com".into()]);
        assert_eq!(
            d.parse_host_header("photos.localhost:9000")
                .unwrap()
                .bucket(),
            Some("photos")
        );
        assert_eq!(
            d.parse_host_header("a.b.s3.example.com").unwrap().bucket(),
            Some("a.b")
        );
        assert_eq!(
            d.parse_host_header("127.0.0.1:9000").unwrap().bucket(),
            None
        );
        assert_eq!(
            d.parse_host_header("localhost:9000").unwrap().bucket(),
            None
        );
        assert_eq!(
            d.parse_host_header("s3.example.com").unwrap().bucket(),
            None
        );
    }
}
