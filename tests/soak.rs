//! The chaos server against one agent: every fault ends in a typed error or
//! the exact body, never a truncated or corrupted body reported as success;
//! and a short soak of all of them from several threads leaves no thread,
//! descriptor or pool slot behind.

mod common;

use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use windlass::{Agent, CancelToken, ErrorKind};
use windlass_loopback::chaos::{body_for, ChaosConfig, ChaosServer, Fault};

/// One test at a time: the soak counts the process's threads and descriptors.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn chaos(fault: Fault, tls: bool) -> ChaosServer {
    ChaosServer::start(ChaosConfig {
        mix: vec![(fault, 1)],
        stall: Duration::from_millis(50),
        tls,
        ..ChaosConfig::default()
    })
    .unwrap()
}

/// What a client must make of each fault: the exact body (with its status),
/// or an error of this kind.
fn expected(fault: Fault) -> Result<u16, ErrorKind> {
    match fault {
        Fault::Valid
        | Fault::StallBeforeHead
        | Fault::StallMidHead
        | Fault::StallMidBody
        | Fault::Dribble
        | Fault::ExtraByte => Ok(200),
        Fault::ServiceUnavailable => Ok(503),
        Fault::CloseBeforeHead => Err(ErrorKind::Io),
        _ => Err(ErrorKind::Protocol),
    }
}

fn fetch(agent: &Agent, url: &str) -> Result<(u16, Vec<u8>), windlass::Error> {
    let response = agent.get(url).call()?;
    let status = response.status().as_u16();
    Ok((status, response.bytes()?))
}

#[test]
fn every_chaos_fault_gives_a_typed_error_or_the_exact_body() {
    let _one = serial();
    for &fault in Fault::ALL {
        let server = chaos(fault, false);
        let agent = common::agent();
        let url = format!("http://{}/probe/{fault:?}", server.addr());
        match (expected(fault), fetch(&agent, &url)) {
            (Ok(200), Ok((200, body))) => {
                assert_eq!(
                    body,
                    body_for(&format!("/probe/{fault:?}"), 128),
                    "{fault:?}"
                );
            }
            (Ok(503), Ok((503, body))) => assert!(body.is_empty()),
            (Err(kind), Err(e)) => assert_eq!(e.kind(), kind, "{fault:?}: {e}"),
            (want, got) => panic!("{fault:?}: wanted {want:?}, got {got:?}"),
        }
        let stats = agent.pool_stats();
        assert_eq!(stats.active(), 0, "{fault:?}");
    }
}

#[test]
fn a_stray_byte_after_a_body_keeps_the_connection_from_reuse() {
    let _one = serial();
    let server = chaos(Fault::ExtraByte, false);
    let agent = common::agent();
    for i in 0..3 {
        let url = format!("http://{}/stray/{i}", server.addr());
        let (status, body) = fetch(&agent, &url).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, body_for(&format!("/stray/{i}"), 128));
    }
    let stats = agent.pool_stats();
    assert_eq!(
        stats.reused(),
        0,
        "a connection with a stray byte was reused"
    );
    assert_eq!(stats.opened(), 3);
}

#[test]
fn an_abrupt_tls_close_mid_body_is_a_protocol_error() {
    let _one = serial();
    let server = chaos(Fault::TlsAbruptClose, true);
    let agent = common::builder()
        .add_root_certificate(server.ca_pem().unwrap().as_bytes())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/tls", server.addr().port());
    let err = fetch(&agent, &url).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    // And a valid answer over the same kind of server is whole.
    server.set_mix(vec![(Fault::Valid, 1)]);
    let (status, body) = fetch(&agent, &url).unwrap();
    assert_eq!((status, body), (200, body_for("/tls", 128)));
}

/// Several threads, every fault, deadlines and cancels: each success has the
/// exact body, the pool ends with nothing active, and threads and descriptors
/// return to where they were.
#[test]
fn a_short_soak_of_every_fault_leaves_nothing_behind() {
    let _one = serial();
    // A reaper left by an earlier test lingers a second.
    common::wait_until("no windlass thread runs", Duration::from_secs(10), || {
        ours(&thread_names()).is_empty()
    });
    let fds_before = common::open_fds();
    {
        let servers: Vec<ChaosServer> = (0..3)
            .map(|i| {
                ChaosServer::start(ChaosConfig {
                    stall: Duration::from_millis(30),
                    seed: 7 + i,
                    ..ChaosConfig::default()
                })
                .unwrap()
            })
            .collect();
        let agent = common::builder()
            .max_connections_per_host(4)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let addrs: Vec<_> = servers.iter().map(|s| s.addr()).collect();
        let start = Arc::new(Barrier::new(4));
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (agent, addrs, start) = (agent.clone(), addrs.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    let mut ok = 0;
                    for i in 0..150 {
                        let target = format!("/soak/{t}/{i}");
                        let url = format!("http://{}{target}", addrs[i % addrs.len()]);
                        let mut req = agent.get(&url);
                        if i % 7 == 0 {
                            req = req.timeout(Duration::from_millis(20));
                        }
                        let token = CancelToken::new();
                        if i % 11 == 0 {
                            req = req.cancel_token(&token);
                            token.cancel();
                        }
                        let Ok(response) = req.call() else { continue };
                        if response.status() != 200 {
                            continue;
                        }
                        if i % 5 == 0 {
                            drop(response); // dropped early, unread
                            continue;
                        }
                        if let Ok(body) = response.bytes() {
                            assert_eq!(body, body_for(&target, 128), "{target}");
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        let ok: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(ok > 0, "no request succeeded");
        let stats = agent.pool_stats();
        assert_eq!((stats.active(), stats.waiting()), (0, 0));
        for h in stats.hosts() {
            assert_eq!(h.connecting, 0, "{}", h.key);
            assert!(h.open() <= 4, "{}", h.key);
        }
        drop(agent);
        drop(servers);
    }
    // The reaper lingers a second after its last pool is gone.
    // Other tests of this file wait for the lock on their own threads, so
    // the threads that must be gone are found by name.
    let back = common::poll_until(Duration::from_secs(10), || {
        ours(&thread_names()).is_empty() && common::open_fds() == fds_before
    });
    assert!(
        back,
        "threads {:?} and {} descriptors did not return to none and {fds_before}",
        ours(&thread_names()),
        common::open_fds()
    );
}

/// Threads windlass or the servers started.
fn ours(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| n.starts_with("windlass") || n.starts_with("chaos"))
        .cloned()
        .collect()
}

fn thread_names() -> Vec<String> {
    common::threads()
        .into_iter()
        .map(|(_, name)| name)
        .collect()
}

#[test]
fn a_per_connection_fault_applies_to_every_request_on_that_connection() {
    let _one = serial();
    let server = ChaosServer::start(ChaosConfig {
        mix: vec![(Fault::ServiceUnavailable, 1)],
        per_connection: true,
        ..ChaosConfig::default()
    })
    .unwrap();
    let agent = common::agent();
    for i in 0..5 {
        let url = format!("http://{}/busy/{i}", server.addr());
        assert_eq!(fetch(&agent, &url).unwrap(), (503, Vec::new()));
    }
    // One connection, picked once, served every request.
    assert_eq!(agent.pool_stats().opened(), 1);
    assert_eq!(server.served(), vec![(Fault::ServiceUnavailable, 5)]);
    // A new mix applies to new connections only.
    server.set_mix(vec![(Fault::Valid, 1)]);
    let url = format!("http://{}/still-busy", server.addr());
    assert_eq!(fetch(&agent, &url).unwrap().0, 503);
}
