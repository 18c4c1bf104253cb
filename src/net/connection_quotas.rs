//! Kafka's connection limits, for the whole broker: `max.connections` (beyond it the broker
//! stops accepting until a connection closes; new ones wait in the kernel's backlog) and
//! `max.connections.per.ip` with `max.connections.per.ip.overrides` (beyond it a new connection
//! from that address is closed at once, as Kafka does).
//!
//! Shared by every shard's listener. The per-address counts sit behind a mutex: it is taken
//! only when a connection opens or closes, never on the request path, and a cross-shard call
//! per accept would cost more than an uncontended lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Config;

/// Open-connection counts and their limits.
pub struct ConnectionQuotas {
    max_total: usize,
    max_per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a new connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The broker-wide limit is reached: wait for a connection to close.
    BrokerFull,
    /// This address has its limit of connections (`limit`).
    PerIp {
        /// The limit for this address: `max.connections.per.ip`, or its override
        /// from `max.connections.per.ip.overrides`.
        limit: usize,
    },
}

/// One admitted connection; dropping it gives its place back.
pub struct ConnectionSlot {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl ConnectionQuotas {
    /// The quotas of `max.connections`, `max.connections.per.ip` and its
    /// per-address overrides, with no connections counted yet; shared by all shards.
    pub fn new(cfg: &Config) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            max_total: cfg.max_connections,
            max_per_ip: cfg.max_connections_per_ip,
            overrides: cfg.max_connections_per_ip_overrides.iter().copied().collect(),
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the broker-wide limit leaves room (checked before accepting).
    pub fn has_room(&self) -> bool {
        self.total.load(Ordering::Acquire) < self.max_total
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        // Reserve a broker-wide place first (compare-and-swap, so shards accepting at the
        // same moment cannot overshoot), then the per-address one.
        self.total.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_total).then_some(n + 1)).map_err(|_| Refused::BrokerFull)?;
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                per_ip.remove(&ip);
            }
            drop(per_ip);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::PerIp { limit });
        }
        *n += 1;
        Ok(ConnectionSlot { quotas: self.clone(), ip })
    }

    /// Connections open now (all addresses).
    pub fn open_connections(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_ip = self.quotas.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        drop(per_ip);
        self.quotas.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(set: &[&str]) -> Arc<ConnectionQuotas> {
        let sets: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        ConnectionQuotas::new(&Config::load(None, None, &sets).unwrap())
    }

    #[test]
    fn per_ip_limit_with_overrides_and_release() {
        let q = quotas(&["max.connections.per.ip=2", "max.connections.per.ip.overrides=10.0.0.9:0,::1:3"]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let s1 = q.open(a).unwrap();
        let _s2 = q.open(a).unwrap();
        assert_eq!(q.open(a).err(), Some(Refused::PerIp { limit: 2 }));
        assert_eq!(q.open_connections(), 2, "a refused connection leaves no count behind");
        drop(s1);
        let _s3 = q.open(a).unwrap();
        assert_eq!(q.open("10.0.0.9".parse().unwrap()).err(), Some(Refused::PerIp { limit: 0 }));
        let v6: IpAddr = "::1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| q.open(v6).unwrap()).collect();
        assert!(q.open(v6).is_err());
        drop(held);
        assert_eq!(q.open_connections(), 2);
        assert!(q.per_ip.lock().unwrap().get(&v6).is_none(), "closed addresses are forgotten");
    }

    #[test]
    fn broker_limit() {
        let q = quotas(&["max.connections=2"]);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = q.open(a).unwrap();
        let _s2 = q.open(b).unwrap();
        assert!(!q.has_room());
        assert_eq!(q.open(a).err(), Some(Refused::BrokerFull));
        drop(s1);
        assert!(q.has_room());
        let _s3 = q.open(a).unwrap();
    }
}
