//! Name resolution on worker threads, so a lookup obeys the deadline and the
//! cancel token even while `getaddrinfo` blocks, with a small TTL cache.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::deadline::{CancelToken, Deadline};
use crate::error::{Error, ErrorKind, Phase};

/// Turns a host name into addresses. Implement it to plug in another resolver.
///
/// It is called on a resolver worker thread; it may block.
///
/// ```
/// use std::net::SocketAddr;
/// struct Fixed;
/// impl windlass::Resolver for Fixed {
///     fn resolve(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
///         Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
///     }
/// }
/// let agent = windlass::Agent::builder().resolver(Fixed).build().unwrap();
/// # drop(agent);
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host`, each with `port`.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver (`getaddrinfo`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// Distinct names being resolved at once; beyond this a new name fails fast
/// instead of piling up threads behind a stuck resolver.
const MAX_STUCK_LOOKUPS: usize = 32;
/// How long a failed lookup is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Most cached names.
const MAX_CACHED: usize = 1024;

type Addrs = Arc<[SocketAddr]>;

struct Cached {
    result: Result<Addrs, String>,
    until: Instant,
}

type Outcome = Result<Addrs, String>;
type Waiters = Vec<std::sync::mpsc::SyncSender<Option<Outcome>>>;

/// Resolver + overrides + cache, shared by an agent's requests.
pub(crate) struct Dns {
    resolver: Arc<dyn Resolver>,
    overrides: HashMap<String, Vec<SocketAddr>>,
    ttl: Duration,
    shared: Arc<Shared>,
}

/// What the resolver workers share with the callers.
#[derive(Default)]
struct Shared {
    cache: Mutex<HashMap<(String, u16), Cached>>,
    /// Lookups under way, each with the callers waiting for it: concurrent
    /// requests for one name share one worker.
    pending: Mutex<HashMap<(String, u16), Waiters>>,
}

impl Shared {
    fn cached(&self, key: &(String, u16)) -> Option<Outcome> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(key)?;
        (entry.until > Instant::now()).then(|| entry.result.clone())
    }

    fn store(&self, key: &(String, u16), result: &Outcome, ttl: Duration) {
        let now = Instant::now();
        let life = if result.is_ok() { ttl } else { NEGATIVE_TTL };
        // A TTL too large to add means "for as long as this process runs".
        let until = now
            .checked_add(life)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            key.clone(),
            Cached {
                result: result.clone(),
                until,
            },
        );
    }
}

/// Ends a lookup however the worker ends, panics included: every waiter is
/// answered and the lookup no longer counts against the limit.
struct Finish {
    shared: Arc<Shared>,
    key: (String, u16),
    result: Option<Outcome>,
}

impl Finish {
    fn complete(mut self, outcome: Outcome) {
        self.result = Some(outcome);
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let result = self
            .result
            .take()
            .unwrap_or_else(|| Err("the resolver panicked".to_string()));
        let waiters = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key)
            .unwrap_or_default();
        for waiter in waiters {
            let _ = waiter.try_send(Some(result.clone()));
        }
    }
}

impl Dns {
    pub(crate) fn new(
        resolver: Arc<dyn Resolver>,
        overrides: HashMap<String, Vec<SocketAddr>>,
        ttl: Duration,
    ) -> Dns {
        Dns {
            resolver,
            overrides,
            ttl,
            shared: Arc::default(),
        }
    }

    /// Addresses for `host:port`. Returns whether a lookup actually ran.
    pub(crate) fn lookup(
        &self,
        host: &str,
        port: u16,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<(Addrs, bool), Error> {
        if let Some(addrs) = self.overrides.get(&host.to_ascii_lowercase()) {
            let addrs: Addrs = addrs
                .iter()
                .map(|a| {
                    let mut a = *a;
                    if a.port() == 0 {
                        a.set_port(port);
                    }
                    a
                })
                .collect();
            return Ok((addrs, false));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok((Arc::from([SocketAddr::new(ip, port)]), false));
        }
        let key = (host.to_ascii_lowercase(), port);
        if let Some(hit) = self.shared.cached(&key) {
            return hit.map(|a| (a, false)).map_err(|m| dns_error(host, m));
        }
        self.wait_for_lookup(key, host, deadline, cancel)
            .map(|a| (a, true))
    }

    /// Join the lookup for `key`, starting it if nobody has.
    fn wait_for_lookup(
        &self,
        key: (String, u16),
        host: &str,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<Addrs, Error> {
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Outcome>>(2);
        let start_worker = {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // A worker stores its result in the cache before it leaves
            // `pending`; looking again under this lock closes the gap between
            // the caller's cache miss and a lookup that finished meanwhile.
            if let Some(hit) = self.shared.cached(&key) {
                return hit.map_err(|m| dns_error(host, m));
            }
            match pending.get_mut(&key) {
                Some(waiters) => {
                    waiters.push(tx.clone());
                    false
                }
                None => {
                    if pending.len() >= MAX_STUCK_LOOKUPS {
                        return Err(Error::new(
                            ErrorKind::Dns,
                            format!(
                                "cannot resolve {host}: {MAX_STUCK_LOOKUPS} other names are \
                                 still being resolved"
                            ),
                        ));
                    }
                    pending.insert(key.clone(), vec![tx.clone()]);
                    true
                }
            }
        };
        if start_worker {
            let finish = Finish {
                shared: Arc::clone(&self.shared),
                key,
                result: None,
            };
            let resolver = Arc::clone(&self.resolver);
            let ttl = self.ttl;
            let spawned = std::thread::Builder::new()
                .name("windlass-dns".into())
                .spawn(move || {
                    let (name, port) = finish.key.clone();
                    let outcome = match resolver.resolve(&name, port) {
                        Ok(list) if list.is_empty() => Err("no addresses found".to_string()),
                        Ok(list) => Ok(Addrs::from(list)),
                        Err(e) => Err(e.to_string()),
                    };
                    // The callers may have given up; the result still warms the cache.
                    finish.shared.store(&finish.key, &outcome, ttl);
                    finish.complete(outcome);
                });
            if let Err(e) = spawned {
                // The closure, and with it `finish`, was dropped: waiters got
                // an error and the lookup is no longer pending.
                return Err(Error::with_source(
                    ErrorKind::Dns,
                    "cannot start a resolver thread",
                    e,
                ));
            }
        }
        let _hook = match cancel {
            Some(token) => match token.on_cancel(move || {
                let _ = tx.try_send(None);
            }) {
                Some(hook) => Some(hook),
                None => return Err(Error::cancelled(Phase::Dns)),
            },
            None => None,
        };
        let got = match deadline.remaining() {
            None => rx.recv().ok(),
            Some(left) => rx.recv_timeout(left).ok(),
        };
        match got {
            Some(Some(Ok(addrs))) => Ok(addrs),
            Some(Some(Err(message))) => Err(dns_error(host, message)),
            Some(None) => Err(Error::cancelled(Phase::Dns)),
            None => Err(Error::timeout(Phase::Dns, host, started.elapsed())),
        }
    }
}

fn dns_error(host: &str, message: String) -> Error {
    Error::new(ErrorKind::Dns, format!("cannot resolve {host}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(AtomicU32);
    impl Resolver for Counting {
        fn resolve(&self, _: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        }
    }

    #[test]
    fn ip_literals_and_overrides_skip_the_resolver() {
        let counting = Arc::new(Counting(AtomicU32::new(0)));
        let mut overrides = HashMap::new();
        overrides.insert(
            "example.test".to_string(),
            vec![SocketAddr::from(([127, 0, 0, 2], 0))],
        );
        let dns = Dns::new(counting.clone(), overrides, Duration::from_secs(60));
        let (a, ran) = dns.lookup("127.0.0.9", 80, Deadline::Never, None).unwrap();
        assert_eq!(a[0], SocketAddr::from(([127, 0, 0, 9], 80)));
        assert!(!ran);
        let (a, _) = dns.lookup("[::1]", 81, Deadline::Never, None).unwrap();
        assert_eq!(a[0].port(), 81);
        let (a, _) = dns
            .lookup("EXAMPLE.test", 82, Deadline::Never, None)
            .unwrap();
        assert_eq!(a[0], SocketAddr::from(([127, 0, 0, 2], 82)));
        assert_eq!(counting.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn lookups_are_cached() {
        let counting = Arc::new(Counting(AtomicU32::new(0)));
        let dns = Dns::new(counting.clone(), HashMap::new(), Duration::from_secs(60));
        let (_, ran) = dns.lookup("name.test", 80, Deadline::Never, None).unwrap();
        assert!(ran);
        let (_, ran) = dns.lookup("name.test", 80, Deadline::Never, None).unwrap();
        assert!(!ran);
        assert_eq!(counting.0.load(Ordering::SeqCst), 1);
    }

    struct Panicking;
    impl Resolver for Panicking {
        fn resolve(&self, _: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
            panic!("resolver bug");
        }
    }

    #[test]
    fn a_panicking_resolver_fails_the_lookup_and_frees_its_place() {
        let dns = Dns::new(Arc::new(Panicking), HashMap::new(), Duration::from_secs(60));
        for i in 0..(MAX_STUCK_LOOKUPS + 5) {
            let err = dns
                .lookup(&format!("n{i}.test"), 80, Deadline::Never, None)
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Dns);
            assert!(err.to_string().contains("panicked"), "{err}");
        }
    }

    struct Gated(crossbeam_channel::Receiver<()>, AtomicU32);
    impl Resolver for Gated {
        fn resolve(&self, _: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let _ = self.0.recv_timeout(Duration::from_secs(10));
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        }
    }

    #[test]
    fn concurrent_lookups_of_one_name_share_one_worker() {
        let (release, rx) = crossbeam_channel::unbounded();
        let gated = Arc::new(Gated(rx, AtomicU32::new(0)));
        let dns = Arc::new(Dns::new(
            gated.clone(),
            HashMap::new(),
            Duration::from_secs(60),
        ));
        let callers: Vec<_> = (0..(MAX_STUCK_LOOKUPS * 2))
            .map(|_| {
                let dns = Arc::clone(&dns);
                std::thread::spawn(move || dns.lookup("busy.test", 80, Deadline::Never, None))
            })
            .collect();
        // Bounded wait until the one worker is inside the resolver.
        for _ in 0..10_000 {
            if gated.1.load(Ordering::SeqCst) > 0 {
                break;
            }
            std::thread::yield_now();
        }
        release.send(()).unwrap();
        for caller in callers {
            assert!(caller.join().unwrap().is_ok());
        }
        assert_eq!(gated.1.load(Ordering::SeqCst), 1);
    }

    struct Blocking(crossbeam_channel::Receiver<()>);
    impl Resolver for Blocking {
        fn resolve(&self, _: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
            let _ = self.0.recv_timeout(Duration::from_secs(10));
            Err(io::Error::other("released"))
        }
    }

    #[test]
    fn a_blocked_lookup_obeys_deadline_and_cancel() {
        let (release, rx) = crossbeam_channel::unbounded();
        let dns = Dns::new(
            Arc::new(Blocking(rx)),
            HashMap::new(),
            Duration::from_secs(60),
        );
        let deadline = Deadline::after(Instant::now(), Some(Duration::from_millis(20)));
        let err = dns.lookup("slow.test", 80, deadline, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout(Phase::Dns));

        let token = CancelToken::new();
        token.cancel();
        let err = dns
            .lookup("slow2.test", 80, Deadline::Never, Some(&token))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        release.send(()).unwrap();
        release.send(()).unwrap();
    }
}
